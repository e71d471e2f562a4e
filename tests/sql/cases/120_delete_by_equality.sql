-- expect: same
DELETE FROM users WHERE ssn IN ('111-11-1111', '333-33-3333') RETURNING id, ssn;
SELECT id, ssn FROM users WHERE id >= 100 ORDER BY id;
