-- expect: same
SELECT id, email AS mail, phone contact, birth_date AS "Born On" FROM users ORDER BY id;
