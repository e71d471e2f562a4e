SET DateStyle = 'Postgres, DMY';
SET TimeZone = 'America/St_Johns';
