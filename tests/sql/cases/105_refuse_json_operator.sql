-- expect: error 0A000
SELECT id, prefs -> 'theme' FROM users ORDER BY id;
