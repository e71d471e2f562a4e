-- expect: error 0A000
-- Equality search is documented as not supported yet.
SELECT id FROM users WHERE ssn = '123-45-6789';
