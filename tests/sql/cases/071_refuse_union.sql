-- expect: error 0A000
SELECT email FROM users UNION SELECT phone FROM users;
