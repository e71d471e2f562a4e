RESET DateStyle;
