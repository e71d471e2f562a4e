-- expect: same
INSERT INTO users (id, name, email, score, birth_date) VALUES
    (100, 'a', 'a@x.org', 1, '2000-01-01'),
    (101, 'b', NULL, -2.5, NULL),
    (102, 'c', 'c@x.org', NULL, '1999-12-31');
SELECT id, email, score, birth_date FROM users WHERE id >= 100 ORDER BY id;
