-- expect: same
INSERT INTO users (id, name, email, score) VALUES (100, 'temp', 'Changed@Example.com', 9.5)
ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, score = EXCLUDED.score
RETURNING id, email, ssn, score;
SELECT id, email, ssn, bio, score FROM users WHERE id = 100;
