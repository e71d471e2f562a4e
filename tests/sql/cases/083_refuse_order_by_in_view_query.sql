-- expect: error 0A000
SELECT id FROM user_contacts ORDER BY phone;
