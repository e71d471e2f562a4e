-- expect: same
SELECT id, email, birth_date FROM users WHERE team = 'core' AND id > 0 ORDER BY id;
