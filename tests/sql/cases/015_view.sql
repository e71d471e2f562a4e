-- expect: same
SELECT * FROM user_contacts ORDER BY id;
