-- expect: error 0A000
UPDATE users SET bio = 'x' WHERE email = 'Ada@Example.com';
