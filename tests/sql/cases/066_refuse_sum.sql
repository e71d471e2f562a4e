-- expect: error 0A000
SELECT sum(points) FROM users;
