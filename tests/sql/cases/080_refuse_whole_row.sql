-- expect: error 0A000
SELECT u FROM users u ORDER BY u.id;
