-- expect: same
INSERT INTO users (id, name, email, phone, ssn, bio, nickname, active, level, points, balance,
    ratio, weight, score, avatar, birth_date, wake_time, created_at, last_login, token, prefs)
VALUES (100, 'new', 'New@Example.com', '+1 555 0100', '222-22-2222', 'hello', 'nick', true, 3, 4,
    5, 6.5, 7.25, 8.125, '\x0a0b', '2020-02-29', '12:34:56', '2020-02-29 12:34:56',
    '2020-02-29 12:34:56+01', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, 2]}');
SELECT * FROM users WHERE id = 100;
