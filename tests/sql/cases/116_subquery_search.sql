-- expect: same
SELECT id, kind FROM readings
WHERE user_id IN (SELECT id FROM users WHERE email = 'b@example.org' OR ssn = '123-45-6789')
ORDER BY id;
