-- expect: same
-- Every type, ordinary, edge and NULL values, in table order.
SELECT * FROM users ORDER BY id;
