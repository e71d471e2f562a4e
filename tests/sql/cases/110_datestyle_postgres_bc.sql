-- expect: same
INSERT INTO users (id, name, birth_date, created_at, last_login) VALUES
    (100, 'p1', '0200-06-01 BC', '0200-06-01 01:02:03.5 BC', '2021-06-01 00:00:00+05:30');
SELECT id, birth_date, created_at, last_login FROM users ORDER BY id;
