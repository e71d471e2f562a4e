-- expect: error 0A000
SELECT id, email::text FROM users ORDER BY id;
