-- expect: same
SELECT id, avatar, token, prefs FROM users ORDER BY id;
