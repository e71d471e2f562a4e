-- expect: error 0A000
PREPARE p AS SELECT email FROM users;
