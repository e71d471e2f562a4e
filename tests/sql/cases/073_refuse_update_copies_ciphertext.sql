-- expect: error 0A000
UPDATE users SET bio = nickname WHERE id = 1;
