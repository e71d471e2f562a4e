-- expect: same
WITH ins AS (
    INSERT INTO users (id, name, email, score) VALUES (100, 'cte', 'cte@example.com', 2.50) RETURNING id, email, score
)
SELECT * FROM ins;
