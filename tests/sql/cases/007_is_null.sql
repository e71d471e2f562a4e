-- expect: same
SELECT id, name FROM users WHERE email IS NULL ORDER BY id;
