-- expect: same
SELECT id, email, row_number() OVER (PARTITION BY team ORDER BY id) AS n FROM users ORDER BY id;
