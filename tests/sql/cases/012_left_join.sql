-- expect: same
SELECT u.id, r.id AS rid, u.phone, r.note
FROM users u LEFT JOIN readings r ON r.user_id = u.id
ORDER BY u.id, r.id;
