-- expect: same
INSERT INTO users (id, name, prefs) VALUES
    (100, 'j1', '{"e": "\u00e9\n", "big": 1e100, "neg": -0.0, "nested": {"b": [], "a": {}}}'),
    (101, 'j2', '""'), (102, 'j3', 'true'), (103, 'j4', '12345678901234567890.000');
SELECT id, prefs FROM users WHERE id >= 100 ORDER BY id;
