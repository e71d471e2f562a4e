-- expect: same
SELECT u.id, r.id FROM users u JOIN readings r ON r.user_id = u.id AND r.reading = 120.50 ORDER BY 1, 2;
