-- expect: error 0A000
COPY users (id, name, email) FROM STDIN;
