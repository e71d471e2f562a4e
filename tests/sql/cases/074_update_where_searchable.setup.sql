INSERT INTO users (id, name, team, email, ssn, bio)
VALUES (100, 'temp', 'tmp', 'Temp@Example.com', '111-11-1111', 'before');
