-- expect: same
-- A same-named table in another schema keeps its plaintext column (identified by OID, not name).
SELECT id, email FROM other.users WHERE email = 'plain@example.com' ORDER BY id;
SELECT id, email FROM public.users WHERE id = 1;
