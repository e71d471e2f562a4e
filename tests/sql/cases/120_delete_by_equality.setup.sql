INSERT INTO users (id, name, team, ssn) VALUES (100, 'temp', 'tmp', '111-11-1111'), (101, 'temp2', 'tmp', '222-22-2222');
