-- expect: same
SELECT id, score FROM users ORDER BY id;
