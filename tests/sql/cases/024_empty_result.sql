-- expect: same
SELECT id, email, score FROM users WHERE id = -1;
