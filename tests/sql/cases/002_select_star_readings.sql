-- expect: same
SELECT * FROM readings ORDER BY id;
