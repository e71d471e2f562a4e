-- expect: error 0A000
WITH c AS (SELECT id, email FROM users WHERE email IS NOT NULL)
SELECT id FROM c WHERE email = 'b@example.org';
