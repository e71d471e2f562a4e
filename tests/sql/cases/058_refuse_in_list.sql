-- expect: error 0A000
SELECT id FROM users WHERE phone IN ('555 0100', '(555) 010-9999');
