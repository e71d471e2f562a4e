-- expect: error 0A000
SELECT min(birth_date) FROM users;
