-- expect: same
INSERT INTO users (id, name, score) VALUES
    (100, 'n1', 0.000), (101, 'n2', -1.10), (102, 'n3', 123456789012345678901234567890.123456789),
    (103, 'n4', 'NaN'), (104, 'n5', -0.0000001), (105, 'n6', 1e20);
SELECT id, score FROM users WHERE id >= 100 ORDER BY id;
