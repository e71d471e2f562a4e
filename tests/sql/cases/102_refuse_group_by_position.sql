-- expect: error 0A000
SELECT email, count(*) FROM users GROUP BY 1;
