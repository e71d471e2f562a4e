RESET bytea_output;
