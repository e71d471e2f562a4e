-- expect: error 0A000
SELECT id FROM users WHERE active;
