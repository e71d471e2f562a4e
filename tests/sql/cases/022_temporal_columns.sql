-- expect: same
SELECT id, birth_date, wake_time, created_at, last_login FROM users ORDER BY id;
