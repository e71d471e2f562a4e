-- expect: error 0A000
-- Equality on a column without a blind index (pgseal.text).
SELECT id FROM users WHERE bio = 'x';
