-- expect: error 0A000
-- COPY TO a server file would write ciphertext where the proxy never sees it (TO STDOUT is carried).
COPY users TO '/tmp/pgseal_differential_copy';
