-- expect: same
SELECT u.id, l.note, l.reading FROM users u
CROSS JOIN LATERAL (SELECT note, reading FROM readings r WHERE r.user_id = u.id ORDER BY r.id LIMIT 1) l
ORDER BY u.id;
