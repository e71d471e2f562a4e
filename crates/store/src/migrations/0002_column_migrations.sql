-- pgseal schema, migration 2: online migrations of existing columns (`pgseal encrypt-column`,
-- `pgseal decrypt-column`). One row per migration; the row is what makes a killed run resumable.

CREATE TABLE pgseal.column_migrations (
    migration_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 'encrypt': plaintext column -> pgseal domain; 'decrypt': the reverse (rollback).
    direction text NOT NULL CHECK (direction IN ('encrypt', 'decrypt')),
    table_oid oid NOT NULL,
    schema_name name NOT NULL,
    table_name name NOT NULL,
    column_name name NOT NULL,
    -- The column being filled during the backfill; renamed to column_name at cutover.
    shadow_name name NOT NULL,
    -- format_type() of the column before the migration, and of the shadow column.
    source_type text NOT NULL,
    target_type text NOT NULL,
    -- The column was NOT NULL: the constraint is carried over after the cutover.
    not_null boolean NOT NULL,
    -- backfill -> validating (cutover committed, constraints being restored) -> done.
    phase text NOT NULL CHECK (phase IN ('backfill', 'validating', 'done')),
    rows_done bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- At most one unfinished migration per column.
CREATE UNIQUE INDEX column_migrations_one_open
    ON pgseal.column_migrations (table_oid, column_name) WHERE phase <> 'done';
