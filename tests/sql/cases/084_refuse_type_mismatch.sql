-- expect: error 42804
-- A value cast to another type than the column's.
INSERT INTO users (id, name, points) VALUES (100, 'm', 1.5::numeric);
