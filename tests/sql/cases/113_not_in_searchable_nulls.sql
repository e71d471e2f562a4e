-- expect: same
-- NOT IN with a NULL is never true: SQL NULL semantics kept through the rewrite.
SELECT id FROM users WHERE ssn NOT IN ('000-00-0000', NULL) ORDER BY id;
SELECT id FROM users WHERE ssn NOT IN ('000-00-0000') ORDER BY id;
