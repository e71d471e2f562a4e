-- expect: same
SELECT count(email) AS emails, count(*) AS all_rows, count(prefs) AS prefs FROM users;
