-- expect: same
SELECT u.id, u.bio FROM users u
WHERE EXISTS (SELECT 1 FROM readings r WHERE r.user_id = u.id AND r.kind = 'hr')
ORDER BY u.id;
