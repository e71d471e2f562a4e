-- expect: same
INSERT INTO users (id, name, email, bio, score) VALUES (100, 'd', DEFAULT, NULL, DEFAULT);
SELECT id, email, bio, score FROM users WHERE id = 100;
