-- expect: same
WITH c AS (SELECT id, phone, wake_time FROM users)
SELECT * FROM c ORDER BY id;
