-- expect: same
SELECT id, avatar FROM users ORDER BY id;
