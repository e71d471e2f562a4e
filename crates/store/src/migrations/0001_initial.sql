-- pgseal schema, migration 1. The byte formats checked here are specified in docs/format.md.
-- The installer runs this inside one transaction, after creating schema pgseal, holding an
-- advisory lock; it records the version in pgseal.schema_version itself.

COMMENT ON SCHEMA pgseal IS
    'pgseal: encrypted-column registry, wrapped data keys and the domains that declare encrypted columns. Managed by `pgseal init`.';

CREATE TABLE pgseal.schema_version (
    -- One row only: the primary key can only ever be true.
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT schema_version_singleton CHECK (singleton),
    version integer NOT NULL CHECK (version > 0),
    pgseal_version text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now(),
    upgraded_at timestamptz
);

CREATE TABLE pgseal.columns (
    column_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Identity of the column now; refreshed by `pgseal init` after renames or dump and restore.
    table_oid oid NOT NULL,
    attnum int2 NOT NULL CHECK (attnum > 0),
    schema_name name NOT NULL,
    table_name name NOT NULL,
    column_name name NOT NULL,
    domain_name text NOT NULL,
    index_bytes int2 NOT NULL DEFAULT 16 CHECK (index_bytes BETWEEN 4 AND 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Deferred so that renames which swap two names can be refreshed one row at a time.
    CONSTRAINT columns_name_unique UNIQUE (schema_name, table_name, column_name)
        DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE pgseal.data_keys (
    column_id integer NOT NULL REFERENCES pgseal.columns (column_id),
    -- 1 = value key, 2 = blind-index key.
    purpose int2 NOT NULL CHECK (purpose IN (1, 2)),
    -- Index key versions are stored in 16 bits inside each ciphertext.
    version integer NOT NULL CHECK (version > 0 AND (purpose = 1 OR version <= 65535)),
    state text NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
    -- Wrapped by the master key (docs/format.md 1.1); never an unwrapped key.
    wrapped_key bytea NOT NULL CHECK (length(wrapped_key) = 70 AND get_byte(wrapped_key, 0) = 182),
    master_key_fingerprint text NOT NULL CHECK (master_key_fingerprint ~ '^mk_[0-9a-f]{16}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    state_changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (column_id, purpose, version)
);

-- At most one key per column and purpose encrypts new values.
CREATE UNIQUE INDEX data_keys_one_active ON pgseal.data_keys (column_id, purpose)
    WHERE state = 'active';

-- True when v is a well-formed pgseal ciphertext header (docs/format.md 2) of the given type tag,
-- with a blind index exactly when searchable. CASE fixes the evaluation order, so no byte is read
-- before the length that contains it has been checked.
CREATE FUNCTION pgseal.is_ciphertext(v bytea, type_tag integer, searchable boolean)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
SELECT CASE
    WHEN length(v) < 36 THEN false
    WHEN get_byte(v, 0) <> 181 OR get_byte(v, 1) <> 1 OR get_byte(v, 2) <> type_tag THEN false
    WHEN get_byte(v, 3) <> CASE WHEN searchable THEN 1 ELSE 0 END THEN false
    WHEN (get_byte(v, 4) | get_byte(v, 5) | get_byte(v, 6) | get_byte(v, 7)) = 0 THEN false
    WHEN (get_byte(v, 8) | get_byte(v, 9) | get_byte(v, 10) | get_byte(v, 11)) = 0 THEN false
    WHEN NOT searchable THEN length(v) >= 52
    WHEN length(v) < 39 THEN false
    WHEN (get_byte(v, 36) | get_byte(v, 37)) = 0 THEN false
    WHEN get_byte(v, 38) NOT BETWEEN 4 AND 32 THEN false
    ELSE length(v) >= 39 + get_byte(v, 38) + 16
END
$$;

COMMENT ON FUNCTION pgseal.is_ciphertext(bytea, integer, boolean) IS
    'Checks the header of a pgseal ciphertext (docs/format.md 2): used by the CHECK of every pgseal domain.';

-- The blind index bytes of a searchable pgseal ciphertext, NULL when it has none. For expression
-- indexes: CREATE INDEX ON users (pgseal.blind_index(email)).
CREATE FUNCTION pgseal.blind_index(v bytea)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
SELECT CASE
    WHEN length(v) < 39 THEN NULL
    WHEN get_byte(v, 0) <> 181 OR get_byte(v, 1) <> 1 OR get_byte(v, 3) <> 1 THEN NULL
    WHEN get_byte(v, 38) NOT BETWEEN 4 AND 32 THEN NULL
    WHEN length(v) < 39 + get_byte(v, 38) + 16 THEN NULL
    ELSE substring(v FROM 40 FOR get_byte(v, 38))
END
$$;

COMMENT ON FUNCTION pgseal.blind_index(bytea) IS
    'The blind index bytes of a searchable pgseal ciphertext (NULL when it has none), for expression indexes.';

-- One domain per row of docs/format.md 2.1. Declaring a column with one of these types is what
-- makes pgseal encrypt it. The CHECK rejects anything written around the proxy.

CREATE DOMAIN pgseal.bool AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 1, false));
COMMENT ON DOMAIN pgseal.bool IS
    'pgseal-encrypted bool (type tag 1), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.bool_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 1, true));
COMMENT ON DOMAIN pgseal.bool_eq IS
    'pgseal-encrypted bool (type tag 1) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.int2 AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 2, false));
COMMENT ON DOMAIN pgseal.int2 IS
    'pgseal-encrypted int2 (type tag 2), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.int2_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 2, true));
COMMENT ON DOMAIN pgseal.int2_eq IS
    'pgseal-encrypted int2 (type tag 2) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.int4 AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 3, false));
COMMENT ON DOMAIN pgseal.int4 IS
    'pgseal-encrypted int4 (type tag 3), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.int4_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 3, true));
COMMENT ON DOMAIN pgseal.int4_eq IS
    'pgseal-encrypted int4 (type tag 3) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.int8 AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 4, false));
COMMENT ON DOMAIN pgseal.int8 IS
    'pgseal-encrypted int8 (type tag 4), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.int8_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 4, true));
COMMENT ON DOMAIN pgseal.int8_eq IS
    'pgseal-encrypted int8 (type tag 4) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.float4 AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 5, false));
COMMENT ON DOMAIN pgseal.float4 IS
    'pgseal-encrypted float4 (type tag 5), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.float8 AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 6, false));
COMMENT ON DOMAIN pgseal.float8 IS
    'pgseal-encrypted float8 (type tag 6), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.numeric AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 7, false));
COMMENT ON DOMAIN pgseal.numeric IS
    'pgseal-encrypted numeric (type tag 7), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.numeric_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 7, true));
COMMENT ON DOMAIN pgseal.numeric_eq IS
    'pgseal-encrypted numeric (type tag 7) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.text AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 8, false));
COMMENT ON DOMAIN pgseal.text IS
    'pgseal-encrypted text (type tag 8), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.text_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 8, true));
COMMENT ON DOMAIN pgseal.text_eq IS
    'pgseal-encrypted text (type tag 8) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.email AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 8, true));
COMMENT ON DOMAIN pgseal.email IS
    'pgseal-encrypted text (type tag 8) with a blind index over the trimmed, lower-cased value: equality search ignores case. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.phone AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 8, true));
COMMENT ON DOMAIN pgseal.phone IS
    'pgseal-encrypted text (type tag 8) with a blind index over the ASCII digits only: equality search ignores formatting. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.varchar AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 9, false));
COMMENT ON DOMAIN pgseal.varchar IS
    'pgseal-encrypted varchar (type tag 9), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.varchar_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 9, true));
COMMENT ON DOMAIN pgseal.varchar_eq IS
    'pgseal-encrypted varchar (type tag 9) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.bytea AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 10, false));
COMMENT ON DOMAIN pgseal.bytea IS
    'pgseal-encrypted bytea (type tag 10), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.bytea_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 10, true));
COMMENT ON DOMAIN pgseal.bytea_eq IS
    'pgseal-encrypted bytea (type tag 10) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.date AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 11, false));
COMMENT ON DOMAIN pgseal.date IS
    'pgseal-encrypted date (type tag 11), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.date_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 11, true));
COMMENT ON DOMAIN pgseal.date_eq IS
    'pgseal-encrypted date (type tag 11) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.time AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 12, false));
COMMENT ON DOMAIN pgseal.time IS
    'pgseal-encrypted time (type tag 12), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.time_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 12, true));
COMMENT ON DOMAIN pgseal.time_eq IS
    'pgseal-encrypted time (type tag 12) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.timestamp AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 13, false));
COMMENT ON DOMAIN pgseal.timestamp IS
    'pgseal-encrypted timestamp (type tag 13), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.timestamp_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 13, true));
COMMENT ON DOMAIN pgseal.timestamp_eq IS
    'pgseal-encrypted timestamp (type tag 13) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.timestamptz AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 14, false));
COMMENT ON DOMAIN pgseal.timestamptz IS
    'pgseal-encrypted timestamptz (type tag 14), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.timestamptz_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 14, true));
COMMENT ON DOMAIN pgseal.timestamptz_eq IS
    'pgseal-encrypted timestamptz (type tag 14) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.uuid AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 15, false));
COMMENT ON DOMAIN pgseal.uuid IS
    'pgseal-encrypted uuid (type tag 15), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.uuid_eq AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 15, true));
COMMENT ON DOMAIN pgseal.uuid_eq IS
    'pgseal-encrypted uuid (type tag 15) with a blind index for equality search. Write through the pgseal proxy; plaintext is rejected.';

CREATE DOMAIN pgseal.jsonb AS bytea
    CONSTRAINT pgseal_ciphertext_required CHECK (pgseal.is_ciphertext(VALUE, 16, false));
COMMENT ON DOMAIN pgseal.jsonb IS
    'pgseal-encrypted jsonb (type tag 16), randomized: no equality search. Write through the pgseal proxy; plaintext is rejected.';
