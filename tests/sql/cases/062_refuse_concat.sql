-- expect: error 0A000
SELECT id, bio || '!' FROM users ORDER BY id;
