-- expect: error 0A000
-- The blind index answers equality only.
SELECT id FROM users WHERE ssn > '1';
