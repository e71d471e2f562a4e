-- expect: same
SELECT u.id, u.email, r.id AS reading_id, r.reading, r.note, r.taken_day
FROM users u JOIN readings r ON r.user_id = u.id
ORDER BY r.id;
