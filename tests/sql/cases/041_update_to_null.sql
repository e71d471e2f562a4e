-- expect: same
UPDATE users SET email = NULL, ssn = NULL WHERE name = 'temp' RETURNING id, email, ssn, bio;
