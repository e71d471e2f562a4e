-- expect: same
SELECT "id", "email", "Users"."phone" FROM public."users" AS "Users" ORDER BY "id";
