-- expect: same
INSERT INTO users (id, name, level, points, balance) VALUES
    (100, 'i1', -32768, -2147483648, -9223372036854775808),
    (101, 'i2', 32767, 2147483647, 9223372036854775807),
    (102, 'i3', 0, -1, -1);
SELECT id, level, points, balance FROM users WHERE id >= 100 ORDER BY id;
