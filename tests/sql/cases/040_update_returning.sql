-- expect: same
UPDATE users SET email = 'updated@example.com', token = '00000000-0000-0000-0000-000000000001'
WHERE id = 100
RETURNING id, email, token, ssn;
