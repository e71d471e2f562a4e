-- expect: same
SELECT id, upper(name) AS shout, team IS NULL AS no_team, email FROM users ORDER BY id;
