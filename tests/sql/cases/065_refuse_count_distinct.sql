-- expect: error 0A000
-- Randomized ciphertexts would count rows, not values.
SELECT count(DISTINCT email) FROM users;
