-- Seed rows of the differential suite: inserted through the proxy into the sealed database and
-- directly into the plain one. Rows 1-4 cover ordinary, edge and NULL values of every type;
-- cases that add rows use ids from 100 up and remove them in their teardown.

INSERT INTO users (id, name, team, email, phone, ssn, bio, nickname, active, level, points,
                   balance, ratio, weight, score, avatar, birth_date, wake_time, created_at,
                   last_login, token, prefs)
VALUES
    (1, 'ada', 'core', 'Ada@Example.com', '+44 20 7946 0018', '123-45-6789',
     'Sun in Leo, Moon in Pisces ☽', 'countess', true, 7, 1200, 9007199254740993, 1.5, -0.1,
     12345.67890, '\x000102b5ff', '1815-12-10', '06:30:00', '1999-12-31 23:59:59.999999',
     '2024-07-01 12:00:00+00', '123e4567-e89b-12d3-a456-426614174000',
     '{"theme": "dark", "langs": ["en", "fr"], "n": 1.50}'),
    (2, 'grace', 'core', '  MiXeD@Case.ORG ', '(555) 010-9999', '987-65-4321',
     '', 'ünïcødé 🦀 ''quoted'' "double" \ back', false, -32768, -2147483648,
     -9223372036854775808, '3.4028235e+38', 1e-300, -0.000100, '\x', '-infinity', '24:00:00',
     'infinity', '-infinity', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '"a \"string\" with ☃"'),
    (3, 'linus', 'kernel', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (4, 'barbara', 'kernel', 'b@example.org', '555 0100', '000-00-0000',
     E'line one\nline two\ttab', 'bl', true, 32767, 2147483647, 9223372036854775807,
     '-Infinity', 'NaN', 0, '\xdeadbeef', '0044-03-15 BC', '00:00:00',
     '1970-01-01 00:00:00', '2000-01-01 00:00:00.000001+00',
     '00000000-0000-0000-0000-000000000000', '[]');

INSERT INTO readings (id, user_id, taken_on, kind, reading, note, taken_day)
VALUES
    (1, 1, '2024-01-01', 'bp', 120.5, 'morning', '2024-01-01'),
    (2, 1, '2024-01-02', 'bp', 118.25, NULL, '2024-01-02'),
    (3, 2, '2024-01-01', 'hr', -0.001, 'after run 🏃', '2024-01-01'),
    (4, 4, '2024-01-03', 'hr', NULL, '', NULL),
    (5, 2, '2024-01-05', 'bp', 99999999999999999999.99, 'high precision', 'infinity');
