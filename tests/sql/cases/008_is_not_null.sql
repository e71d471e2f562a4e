-- expect: same
SELECT id, bio FROM users WHERE bio IS NOT NULL ORDER BY id;
