-- expect: same
INSERT INTO users (id, name) VALUES (100, 'temp')
ON CONFLICT (id) DO UPDATE SET email = 'set@example.com', prefs = '{"x": true}'
RETURNING id, email, prefs;
