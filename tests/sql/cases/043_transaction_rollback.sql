-- expect: same
BEGIN;
INSERT INTO users (id, name, email) VALUES (100, 'tx', 'tx@example.com');
SELECT id, email FROM users WHERE id = 100;
ROLLBACK;
SELECT count(*) FROM users WHERE id = 100;
