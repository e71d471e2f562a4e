INSERT INTO users (id, name, team, email, ssn, bio, score, birth_date)
VALUES (100, 'temp', 'tmp', 'Temp@Example.com', '111-11-1111', 'before', 1.25, '2001-02-03');
