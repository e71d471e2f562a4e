-- expect: same
SELECT 1 AS one;
SELECT id, email FROM users WHERE id = 1;
SELECT id, prefs FROM users WHERE id = 2;
