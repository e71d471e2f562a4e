-- expect: same
UPDATE users SET bio = 'after', score = -0.5, birth_date = '1999-01-01' WHERE id = 100;
SELECT id, bio, score, birth_date FROM users WHERE id = 100;
