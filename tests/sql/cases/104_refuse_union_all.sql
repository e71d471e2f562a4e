-- expect: error 0A000
SELECT id, email FROM users WHERE id = 1
UNION ALL
SELECT id, email FROM users WHERE id = 2;
