-- pgseal schema migration 0004: announce a column migration's cutover before it happens.
--
-- `pgseal encrypt-column` / `decrypt-column` set cutover_pending_until (and NOTIFY
-- pgseal_catalog) before taking the cutover's ACCESS EXCLUSIVE lock. Proxies that see a mark
-- still in the future hold new statements on the table until a catalog without it is loaded
-- (the cutover committed, which clears it in the same transaction, or was abandoned and
-- cleared it) or the time passes, so no statement analysed with the old column runs against
-- the new one. A deadline rather than a flag: a migration killed while the mark is set leaves
-- nothing that holds statements for longer than that.

ALTER TABLE pgseal.column_migrations
    ADD COLUMN cutover_pending_until timestamptz;
