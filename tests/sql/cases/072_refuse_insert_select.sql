-- expect: error 0A000
INSERT INTO users (id, name, email) SELECT id + 100, name, email FROM users;
