-- expect: same
INSERT INTO users (id, name, created_at, last_login) VALUES
    (100, 's1', '0044-03-15 12:00:00 BC', '0044-03-15 12:00:00+00 BC'),
    (101, 's2', '294276-12-31 23:59:59.999999', '2024-03-10 02:30:00-08'),
    (102, 's3', '-infinity', 'infinity'),
    (103, 's4', '2000-01-01 00:00:00', '1999-12-31 23:59:59.999999-12:30');
SELECT id, created_at, last_login FROM users WHERE id >= 100 ORDER BY id;
