-- expect: same
INSERT INTO users (id, name, email) VALUES (100, 'temp', 'ignored@example.com')
ON CONFLICT DO NOTHING
RETURNING id, email;
SELECT id, email FROM users WHERE id = 100;
