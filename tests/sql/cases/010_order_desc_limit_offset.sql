-- expect: same
SELECT id, ssn, score FROM users ORDER BY id DESC LIMIT 2 OFFSET 1;
