-- expect: same
-- Equality on a searchable column (pgseal.text_eq) through its blind index.
SELECT id, ssn FROM users WHERE ssn = '123-45-6789' ORDER BY id;
