SET bytea_output = 'escape';
