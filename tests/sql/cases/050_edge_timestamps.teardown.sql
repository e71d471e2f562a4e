DELETE FROM readings WHERE id >= 100;
DELETE FROM users WHERE id >= 100;
