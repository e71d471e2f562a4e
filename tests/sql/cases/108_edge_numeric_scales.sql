-- expect: same
-- numeric Infinity exists since PostgreSQL 14.
INSERT INTO users (id, name, score) VALUES
    (100, 'k1', 0.0000000000000000000000000000001), (101, 'k2', -99999.99990),
    (102, 'k3', 10000), (103, 'k4', 1.0E-5), (104, 'k5', 'Infinity');
SELECT id, score FROM users WHERE id >= 100 ORDER BY id;
