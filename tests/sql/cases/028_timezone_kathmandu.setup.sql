SET TimeZone = 'Asia/Kathmandu';
