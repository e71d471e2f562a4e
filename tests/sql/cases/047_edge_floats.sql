-- expect: same
INSERT INTO users (id, name, ratio, weight) VALUES
    (100, 'f1', '-0', '-0'), (101, 'f2', 'Infinity', '-Infinity'), (102, 'f3', 'NaN', 'NaN'),
    (103, 'f4', 1.17549435e-38, 5e-324), (104, 'f5', 0.1, 0.1), (105, 'f6', -3.4028235e38, 1.7976931348623157e308);
SELECT id, ratio, weight FROM users WHERE id >= 100 ORDER BY id;
