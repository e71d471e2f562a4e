-- expect: error 0A000
CREATE TABLE users_copy AS SELECT * FROM users;
