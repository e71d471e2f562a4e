-- expect: same
SELECT s.id, s.mail FROM (SELECT id, email AS mail FROM users WHERE id < 4) AS s ORDER BY s.id;
