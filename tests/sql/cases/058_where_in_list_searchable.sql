-- expect: same
SELECT id, phone FROM users WHERE phone IN ('555 0100', '(555) 010-9999') ORDER BY id;
