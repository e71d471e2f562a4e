-- expect: error 0A000
SELECT DISTINCT email FROM users;
