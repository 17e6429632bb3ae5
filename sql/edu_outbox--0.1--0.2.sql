-- edu_outbox 0.1 -> 0.2.
-- CREATE EXTENSION installs 0.1 and then runs this script, so this file is
-- both the upgrade path and the definition of what 0.2 adds: there is one
-- copy of each object's definition. Later versions follow the same rule
-- (edu_outbox--0.2--0.3.sql, ...); edu_outbox--0.1.sql is never edited.

\echo Use "ALTER EXTENSION edu_outbox UPDATE TO '0.2'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 9, item 8: pg_dump / pg_restore round-trip, ids never go backwards.
--
-- What a dump carries: the id sequence, every undelivered outbox row (rows
-- the relay already delivered stay behind), the dead letters and the pause
-- flag. What it does not: the relay's snapshots and transaction ids, which
-- only mean something in the cluster that made them. A restore rebuilds them:
-- relay_state keeps the row CREATE EXTENSION made in the new database (only
-- "paused" is taken over), and every restored outbox row is re-stamped with
-- the restoring transaction's xid, so the relay sees it as written by a
-- transaction that committed after the restore began: pending, in id order.

-- Ids start above the clock (microseconds since 1970), so DROP + CREATE
-- EXTENSION, or a new database, never hands out ids below earlier ones:
-- no install can draw a million ids a second for long.
SELECT pg_catalog.setval('edu_outbox.outbox_id_seq',
           greatest((SELECT last_value FROM edu_outbox.outbox_id_seq),
                    (extract(epoch FROM pg_catalog.clock_timestamp()) * 1000000)::bigint));

SELECT pg_catalog.pg_extension_config_dump('edu_outbox.outbox_id_seq', '');
-- one call per statement: each call rewrites the pg_extension row
SELECT pg_catalog.pg_extension_config_dump('edu_outbox.outbox_p0',
    'WHERE NOT pg_catalog.pg_visible_in_snapshot(xid, (SELECT delivered_snapshot FROM edu_outbox.relay_state))');
SELECT pg_catalog.pg_extension_config_dump('edu_outbox.outbox_p1',
    'WHERE NOT pg_catalog.pg_visible_in_snapshot(xid, (SELECT delivered_snapshot FROM edu_outbox.relay_state))');
SELECT pg_catalog.pg_extension_config_dump('edu_outbox.outbox_p2',
    'WHERE NOT pg_catalog.pg_visible_in_snapshot(xid, (SELECT delivered_snapshot FROM edu_outbox.relay_state))');
SELECT pg_catalog.pg_extension_config_dump('edu_outbox.outbox_p3',
    'WHERE NOT pg_catalog.pg_visible_in_snapshot(xid, (SELECT delivered_snapshot FROM edu_outbox.relay_state))');

-- snap with xid made not visible (xid must be below its xmax).
CREATE FUNCTION edu_outbox.snapshot_hiding(snap pg_snapshot, hide xid8)
RETURNS pg_snapshot
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('%s:%s:%s',
                  least(pg_snapshot_xmin(snap), hide), pg_snapshot_xmax(snap),
                  (SELECT string_agg(x::text, ',' ORDER BY x::text::numeric)
                   FROM (SELECT pg_snapshot_xip(snap) AS x UNION SELECT hide) AS xs))::pg_snapshot
$$;
REVOKE ALL ON FUNCTION edu_outbox.snapshot_hiding(pg_snapshot, xid8) FROM PUBLIC;

-- BEFORE INSERT on the outbox, only for rows that arrive with an xid of their
-- own (pg_restore's COPY): outbox_publish() leaves xid to its default.
CREATE FUNCTION edu_outbox.restamp_restored_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.xid := pg_current_xact_id();
    -- pg_restore -1 runs CREATE EXTENSION in this same transaction, and the
    -- snapshot taken then may count this transaction as delivered.
    UPDATE edu_outbox.relay_state
    SET delivered_snapshot = edu_outbox.snapshot_hiding(delivered_snapshot, NEW.xid)
    WHERE pg_visible_in_snapshot(NEW.xid, delivered_snapshot);
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION edu_outbox.restamp_restored_row() FROM PUBLIC;

CREATE TRIGGER restamp_restored_row
    BEFORE INSERT ON edu_outbox.outbox
    FOR EACH ROW WHEN (NEW.xid IS DISTINCT FROM pg_current_xact_id())
    EXECUTE FUNCTION edu_outbox.restamp_restored_row();

-- BEFORE INSERT on relay_state: the table always has its one row, so a
-- restored row only hands over the pause flag.
CREATE FUNCTION edu_outbox.merge_restored_state() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM edu_outbox.relay_state) THEN
        RETURN NEW;
    END IF;
    UPDATE edu_outbox.relay_state SET paused = NEW.paused;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION edu_outbox.merge_restored_state() FROM PUBLIC;

CREATE TRIGGER merge_restored_state
    BEFORE INSERT ON edu_outbox.relay_state
    FOR EACH ROW EXECUTE FUNCTION edu_outbox.merge_restored_state();

-- ---------------------------------------------------------------------------
-- Issue 9, item 10: DROP EXTENSION refuses while events are not delivered.
-- The event trigger is a member of the extension; it still exists when the
-- DROP that removes it starts, so ddl_command_start fires for that DROP.
-- SET edu_outbox.discard_pending_on_drop = on lets the DROP go ahead.
CREATE FUNCTION edu_outbox.guard_drop() RETURNS event_trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'outbox_guard_drop';
REVOKE ALL ON FUNCTION edu_outbox.guard_drop() FROM PUBLIC;

CREATE EVENT TRIGGER edu_outbox_guard_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION edu_outbox.guard_drop();

-- ---------------------------------------------------------------------------
-- Issue 9, item 12: the roles edu_outbox_monitor and edu_outbox_operator.
-- Roles belong to the cluster, not to a database: they are created if
-- missing (a second database's CREATE EXTENSION finds them), and DROP
-- EXTENSION leaves them. The operations functions run as the extension's
-- owner (SECURITY DEFINER, fixed search_path), so granting them needs no
-- right on the private schema, and no role can read pending payloads.
--   monitor:  outbox_status(), outbox_topic_status, outbox_dead_letter_list
--             (dead letters without key, headers or payload)
--   operator: all of that (it is a member of edu_outbox_monitor), plus
--             pause/resume, replay, retry/discard of dead letters, and the
--             dead letters' payloads (outbox_dead_letters): it decides about them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'edu_outbox_monitor') THEN
        CREATE ROLE edu_outbox_monitor NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'edu_outbox_operator') THEN
        CREATE ROLE edu_outbox_operator NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('edu_outbox_operator', 'edu_outbox_monitor', 'MEMBER') THEN
        GRANT edu_outbox_monitor TO edu_outbox_operator;
    END IF;
END
$$;

ALTER FUNCTION @extschema@.outbox_status() SECURITY DEFINER;
ALTER FUNCTION @extschema@.outbox_pause() SECURITY DEFINER;
ALTER FUNCTION @extschema@.outbox_resume() SECURITY DEFINER;
ALTER FUNCTION @extschema@.outbox_retry_dead_letter(bigint) SECURITY DEFINER;
ALTER FUNCTION @extschema@.outbox_discard_dead_letter(bigint) SECURITY DEFINER;
ALTER FUNCTION @extschema@.outbox_replay(bigint, bigint) SECURITY DEFINER;
ALTER FUNCTION @extschema@.outbox_replay(timestamptz, timestamptz) SECURITY DEFINER;

CREATE VIEW @extschema@.outbox_dead_letter_list AS
    SELECT id, topic, error, created_at, failed_at, parked_behind,
           pg_catalog.octet_length(payload::text) AS payload_bytes
    FROM edu_outbox.dead_letter;
REVOKE ALL ON @extschema@.outbox_dead_letter_list FROM PUBLIC;

COMMENT ON VIEW @extschema@.outbox_dead_letter_list IS
  'dead letters without their key, headers or payload (for monitoring)';

GRANT EXECUTE ON FUNCTION @extschema@.outbox_status() TO edu_outbox_monitor;
GRANT EXECUTE ON FUNCTION edu_outbox.topic_stats() TO edu_outbox_monitor;
GRANT SELECT ON @extschema@.outbox_topic_status TO edu_outbox_monitor;
GRANT SELECT ON @extschema@.outbox_dead_letter_list TO edu_outbox_monitor;

GRANT EXECUTE ON FUNCTION @extschema@.outbox_pause() TO edu_outbox_operator;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_resume() TO edu_outbox_operator;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_retry_dead_letter(bigint) TO edu_outbox_operator;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_discard_dead_letter(bigint) TO edu_outbox_operator;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_replay(bigint, bigint) TO edu_outbox_operator;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_replay(timestamptz, timestamptz) TO edu_outbox_operator;
GRANT SELECT ON @extschema@.outbox_dead_letters TO edu_outbox_operator;
