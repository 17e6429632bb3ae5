-- edu_outbox 0.1 -> 0.2.
-- CREATE EXTENSION installs 0.1 and then runs this script, so this file is
-- both the upgrade path and the definition of what 0.2 adds: there is one
-- copy of each object's definition. Later versions follow the same rule
-- (edu_outbox--0.2--0.3.sql, ...); edu_outbox--0.1.sql is never edited.

\echo Use "ALTER EXTENSION edu_outbox UPDATE TO '0.2'" to load this file. \quit

-- Issue 9, item 11: several databases in one cluster.
-- Run at CREATE EXTENSION (and at the update from 0.1): wakes the launcher
-- once this transaction commits, so that edu_outbox.database = '*' starts
-- relaying this database, and warns if no relay serves it.
CREATE FUNCTION edu_outbox.check_database_relayed() RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'outbox_check_database_relayed';
REVOKE ALL ON FUNCTION edu_outbox.check_database_relayed() FROM PUBLIC;

SELECT edu_outbox.check_database_relayed();
