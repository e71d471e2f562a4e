-- expect: same
SELECT c.name, c.email, r.kind, r.reading
FROM user_contacts c JOIN readings r ON r.user_id = c.id
ORDER BY r.id;
