-- expect: same
UPDATE users SET bio = 'x' WHERE email = 'Temp@Example.com' AND team = 'tmp' RETURNING id, bio, email;
