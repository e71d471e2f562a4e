RESET TimeZone;
