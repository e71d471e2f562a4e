-- expect: same
SELECT DISTINCT ON (team) team, id, email FROM users ORDER BY team, id;
