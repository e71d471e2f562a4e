-- expect: same
SELECT id, email, email AS again, u.email AS third FROM users u ORDER BY id;
