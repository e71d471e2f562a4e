-- expect: same
SELECT id, ssn IN ('123-45-6789', NULL) AS hit, ssn = '987-65-4321' AS eq FROM users ORDER BY id;
