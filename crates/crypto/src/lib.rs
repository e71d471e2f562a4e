//! Keys, envelope encryption, the pgseal value ciphertext format and blind indexes. No I/O.
