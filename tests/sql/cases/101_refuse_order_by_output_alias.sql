-- expect: error 0A000
SELECT id, email AS e FROM users ORDER BY e;
