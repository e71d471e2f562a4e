-- expect: same
DELETE FROM users WHERE id = 100 RETURNING *;
