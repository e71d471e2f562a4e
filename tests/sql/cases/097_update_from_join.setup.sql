INSERT INTO users (id, name, team, email, ssn, bio, score, birth_date)
VALUES (100, 'temp', 'tmp', 'Temp@Example.com', '111-11-1111', 'before', 1.25, '2001-02-03');
INSERT INTO readings (id, user_id, taken_on, kind) VALUES (100, 100, '2024-01-01', 'bp');
