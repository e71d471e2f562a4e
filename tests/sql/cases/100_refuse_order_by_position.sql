-- expect: error 0A000
SELECT id, email FROM users ORDER BY 2;
