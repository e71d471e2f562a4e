SET DateStyle = 'German, DMY';
