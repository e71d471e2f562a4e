-- expect: error 0A000
COPY users TO STDOUT;
