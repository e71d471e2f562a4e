-- expect: same
TABLE users ORDER BY id;
