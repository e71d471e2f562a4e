-- expect: same
SELECT count(*) FILTER (WHERE email IS NULL) AS missing, count(ssn) FROM users;
