-- expect: same
-- Text output follows the session's DateStyle.
SELECT id, birth_date, created_at, last_login FROM users ORDER BY id;
