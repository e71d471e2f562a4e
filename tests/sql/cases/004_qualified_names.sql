-- expect: same
SELECT users.id, users.ssn, public.users.bio FROM public.users ORDER BY users.id;
