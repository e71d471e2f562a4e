-- expect: same
INSERT INTO users (id, name, email, birth_date, prefs)
VALUES (100, 'r', 'R@Example.com', '1980-05-17', '{"b": 1, "a": 2}')
RETURNING id, email, birth_date, prefs;
