-- expect: same
-- Two relations' columns, some with the same name (id).
SELECT * FROM users u JOIN readings r ON r.user_id = u.id ORDER BY r.id;
