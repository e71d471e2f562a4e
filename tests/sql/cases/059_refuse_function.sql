-- expect: error 0A000
SELECT lower(email) FROM users;
