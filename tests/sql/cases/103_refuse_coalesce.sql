-- expect: error 0A000
SELECT id, coalesce(email, 'none') FROM users ORDER BY id;
