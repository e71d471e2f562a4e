RESET extra_float_digits;
