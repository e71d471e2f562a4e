-- expect: same
SELECT id FROM users WHERE ssn <> '123-45-6789' ORDER BY id;
