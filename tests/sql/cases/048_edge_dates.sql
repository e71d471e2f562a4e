-- expect: same
INSERT INTO users (id, name, birth_date) VALUES
    (100, 'd1', '4713-01-01 BC'), (101, 'd2', '5874897-12-31'), (102, 'd3', 'infinity'),
    (103, 'd4', '-infinity'), (104, 'd5', '0001-01-01'), (105, 'd6', '0001-12-31 BC');
SELECT id, birth_date FROM users WHERE id >= 100 ORDER BY id;
