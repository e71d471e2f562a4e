-- expect: error 0A000
SELECT id, points + 1 FROM users ORDER BY id;
