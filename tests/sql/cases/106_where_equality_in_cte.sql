-- expect: same
WITH c AS (SELECT id, email FROM users WHERE email IS NOT NULL)
SELECT id, email FROM c WHERE email = 'b@example.org';
