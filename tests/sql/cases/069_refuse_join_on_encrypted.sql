-- expect: error 0A000
SELECT u.id, v.id FROM users u JOIN users v ON u.email = v.email;
