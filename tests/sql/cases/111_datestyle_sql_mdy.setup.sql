SET DateStyle = 'SQL, MDY';
