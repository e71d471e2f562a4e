-- expect: error 0A000
-- COPY FROM a server file would store plaintext the proxy never sees (FROM STDIN is carried).
COPY users (id, name, email) FROM '/tmp/pgseal_differential_copy';
