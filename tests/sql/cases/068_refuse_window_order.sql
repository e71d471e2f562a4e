-- expect: error 0A000
SELECT id, row_number() OVER (ORDER BY score) FROM users;
