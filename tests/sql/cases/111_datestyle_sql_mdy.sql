-- expect: same
SELECT id, birth_date, created_at, last_login FROM users ORDER BY id;
