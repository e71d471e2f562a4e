-- expect: same
-- An alias must not lose decryption (Acra issue 733).
SELECT u.id, u.nickname, u.token FROM users AS u ORDER BY u.id;
