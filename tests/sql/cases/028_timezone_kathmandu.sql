-- expect: same
SELECT id, last_login FROM users ORDER BY id;
