-- expect: same
SELECT id, level, points, balance, active FROM users ORDER BY id;
