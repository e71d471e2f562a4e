-- expect: error 0A000
DELETE FROM users WHERE birth_date < '1900-01-01';
