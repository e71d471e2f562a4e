-- expect: same
SELECT id, email FROM users
WHERE id IN (SELECT user_id FROM readings WHERE kind = 'bp')
ORDER BY id;
