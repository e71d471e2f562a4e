-- expect: same
SELECT id, email FROM users ORDER BY 1 DESC;
