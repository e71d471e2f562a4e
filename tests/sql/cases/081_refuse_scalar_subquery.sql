-- expect: error 0A000
SELECT id, (SELECT email FROM users WHERE id = 1) AS first_email FROM readings ORDER BY id;
