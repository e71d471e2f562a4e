-- expect: same
UPDATE users SET email = DEFAULT, bio = 'x' WHERE id = 100 RETURNING id, email, bio;
