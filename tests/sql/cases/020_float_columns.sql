-- expect: same
SELECT id, ratio, weight FROM users ORDER BY id;
