-- expect: same
-- A literal cast to the column's type or to text is accepted.
INSERT INTO users (id, name, birth_date, score, points, email)
VALUES (100, 't', date '2024-02-29', 3.14::numeric, 42::int4, 'x@y.z'::text)
RETURNING id, birth_date, score, points, email;
