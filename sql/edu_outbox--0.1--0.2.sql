-- edu_outbox 0.1 -> 0.2.
-- CREATE EXTENSION installs 0.1 and then runs this script, so this file is
-- both the upgrade path and the definition of what 0.2 adds: there is one
-- copy of each object's definition. Later versions follow the same rule
-- (edu_outbox--0.2--0.3.sql, ...); edu_outbox--0.1.sql is never edited.

\echo Use "ALTER EXTENSION edu_outbox UPDATE TO '0.2'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 9 item 7: the "outbox-" header namespace is reserved (any letter
-- case) for the extension. Applications are refused such headers; dead-letter
-- retry and replay publish again through republish_event, which accepts
-- outbox-retry-of and outbox-replay-of and is not executable by PUBLIC.

CREATE FUNCTION edu_outbox.republish_event(
    topic text, payload jsonb, key text DEFAULT NULL, headers jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_republish_event';

COMMENT ON FUNCTION edu_outbox.republish_event(text, jsonb, text, jsonb) IS
  'the extension''s own outbox_publish() for retried and replayed events: allows the reserved outbox-retry-of and outbox-replay-of headers';

REVOKE ALL ON FUNCTION edu_outbox.republish_event(text, jsonb, text, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION edu_outbox.requeue_dead_letters(head bigint, include_head boolean)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d record;
    n integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM edu_outbox.dead_letter WHERE id = head AND parked_behind IS NULL) THEN
        RAISE EXCEPTION 'dead letter % does not exist', head
            USING ERRCODE = 'no_data_found',
                  HINT = 'List them with SELECT * FROM outbox_dead_letters WHERE parked_behind IS NULL.';
    END IF;
    FOR d IN
        SELECT * FROM edu_outbox.dead_letter
        WHERE id = head OR parked_behind = head
        ORDER BY id FOR UPDATE
    LOOP
        IF d.id <> head OR include_head THEN
            PERFORM edu_outbox.republish_event(d.topic, d.payload, d.key,
                        coalesce(d.headers, '{}'::jsonb) || jsonb_build_object('outbox-retry-of', d.id::text));
            n := n + 1;
        END IF;
    END LOOP;
    DELETE FROM edu_outbox.dead_letter WHERE parked_behind = head;
    DELETE FROM edu_outbox.dead_letter WHERE id = head;
    RETURN n;
END
$$;
CREATE OR REPLACE FUNCTION edu_outbox.replay(from_id bigint, to_id bigint,
                                  from_time timestamptz, to_time timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e record;
    n bigint := 0;
BEGIN
    FOR e IN
        SELECT o.* FROM edu_outbox.outbox o, edu_outbox.relay_state s
        WHERE (from_id IS NULL OR o.id BETWEEN from_id AND to_id)
          AND (from_time IS NULL OR o.created_at BETWEEN from_time AND to_time)
          AND pg_visible_in_snapshot(o.xid, s.delivered_snapshot)
        ORDER BY o.id
    LOOP
        PERFORM edu_outbox.republish_event(e.topic, e.payload, e.key,
                    coalesce(e.headers - 'outbox-replay-of', '{}'::jsonb)
                    || jsonb_build_object('outbox-replay-of', e.id::text));
        n := n + 1;
    END LOOP;
    IF n = 0 THEN
        RAISE NOTICE 'no delivered events in that range are retained'
            USING HINT = 'The outbox keeps roughly the last 130000 to 200000 delivered events.';
    END IF;
    RETURN n;
END
$$;

-- ---------------------------------------------------------------------------
-- Issue 9, privacy of captured rows: column names are quoted in the trigger
-- arguments, so that any identifier round-trips ("a,b", mixed case, spaces);
-- every operation is checked; one trigger per table and topic, with a name
-- that stays unique when topics share a long prefix.

CREATE OR REPLACE FUNCTION @extschema@.outbox_capture_table(
    tbl            regclass,
    topic          text,
    key            text[]  DEFAULT NULL,
    exclude        text[]  DEFAULT NULL,
    include        text[]  DEFAULT NULL,
    ops            text[]  DEFAULT ARRAY['insert', 'update', 'delete'],
    skip_unchanged boolean DEFAULT true)
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args     text[] := ARRAY[]::text[];
    events   text[] := ARRAY[]::text[];
    trg      text;
    other    text;
    op       text;
BEGIN
    IF array_position(key, NULL) IS NOT NULL OR array_position(exclude, NULL) IS NOT NULL
       OR array_position(include, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'column lists of outbox_capture_table() must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF ops IS NULL OR cardinality(ops) = 0 THEN
        RAISE EXCEPTION 'outbox_capture_table() needs at least one operation to capture'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass ops => ARRAY[''insert'', ''update'', ''delete''] or a subset.';
    END IF;
    FOREACH op IN ARRAY ops LOOP
        IF op IS NULL OR lower(op) NOT IN ('insert', 'update', 'delete') THEN
            RAISE EXCEPTION 'unknown operation % in ops of outbox_capture_table()',
                            coalesce(quote_literal(op), 'NULL')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Each element of ops is one of ''insert'', ''update'' and ''delete''.';
        END IF;
        IF NOT upper(op) = ANY (events) THEN events := events || upper(op); END IF;
    END LOOP;
    -- each name in double quotes ("" inside), as outbox_capture() parses them
    IF key IS NOT NULL THEN
        args := args || ('key=' || array_to_string(
            ARRAY(SELECT '"' || replace(c, '"', '""') || '"' FROM unnest(key) AS c), ','));
    END IF;
    IF exclude IS NOT NULL THEN
        args := args || ('exclude=' || array_to_string(
            ARRAY(SELECT '"' || replace(c, '"', '""') || '"' FROM unnest(exclude) AS c), ','));
    END IF;
    IF include IS NOT NULL THEN
        args := args || ('include=' || array_to_string(
            ARRAY(SELECT '"' || replace(c, '"', '""') || '"' FROM unnest(include) AS c), ','));
    END IF;
    args := args || ('ops=' || array_to_string(ops, ','))
                 || ('skip_unchanged=' || skip_unchanged::text);
    PERFORM @extschema@.outbox_capture_check(tbl, topic, args);


    -- Recapturing a topic replaces its trigger, whatever its name. A new
    -- trigger is outbox_capture_<topic>; when that exceeds the 63 bytes of
    -- a name, the topic is cut and a hash of the whole topic keeps the name
    -- unique. A name taken by another trigger is refused, never replaced.
    SELECT t.tgname INTO trg FROM pg_trigger AS t
    WHERE t.tgrelid = tbl AND NOT t.tgisinternal
      AND t.tgfoid = '@extschema@.outbox_capture()'::regprocedure
      AND split_part(encode(t.tgargs, 'escape'), '\000', 1) = topic
    ORDER BY t.oid LIMIT 1;
    IF trg IS NULL THEN
        trg := 'outbox_capture_' || topic;
        IF octet_length(trg) > 63 THEN
            trg := left(trg, 54) || '_' || left(md5(topic), 8);
        END IF;
        SELECT CASE WHEN t.tgfoid = '@extschema@.outbox_capture()'::regprocedure
                    THEN split_part(encode(t.tgargs, 'escape'), '\000', 1) END
          INTO other
        FROM pg_trigger AS t WHERE t.tgrelid = tbl AND t.tgname = trg;
        IF FOUND THEN
            RAISE EXCEPTION 'trigger "%" on table % already exists', trg, tbl
                USING ERRCODE = 'duplicate_object',
                      DETAIL = CASE WHEN other IS NULL THEN 'It is not an outbox_capture() trigger.'
                                    ELSE format('It captures the table for topic "%s".', other) END,
                      HINT = 'Drop or rename that trigger, then capture again.';
        END IF;
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s FOR EACH ROW EXECUTE FUNCTION %I.outbox_capture(%s)',
                   trg, array_to_string(events, ' OR '), tbl, '@extschema@',
                   (SELECT string_agg(quote_literal(a), ', ')
                    FROM unnest(ARRAY[topic] || args) AS a));
    RETURN trg;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_capture_table(regclass, text, text[], text[], text[], text[], boolean) IS
  'attaches an outbox_capture() trigger to a table (replacing the table''s trigger for the same topic) and returns its name; NULL key means the primary key, an empty key no key';

-- Issue 9: ALTER TABLE keeps capture triggers working. RENAME COLUMN
-- rewrites the triggers that name the column (an excluded column stays
-- excluded); any other change that would make a capture trigger fail every
-- write (DROP COLUMN of a column it names) is refused, naming the trigger.

CREATE FUNCTION edu_outbox.outbox_capture_ddl() RETURNS event_trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'outbox_capture_ddl';

COMMENT ON FUNCTION edu_outbox.outbox_capture_ddl() IS
  'event trigger at the end of ALTER TABLE: follows column renames in outbox_capture() triggers and refuses changes that would break one';

REVOKE ALL ON FUNCTION edu_outbox.outbox_capture_ddl() FROM PUBLIC;

CREATE EVENT TRIGGER edu_outbox_capture_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION edu_outbox.outbox_capture_ddl();

-- Also after ALTER TABLE run with session_replication_role = replica.
ALTER EVENT TRIGGER edu_outbox_capture_ddl ENABLE ALWAYS;

-- Capture triggers made under 0.1 that 0.2 refuses (a key column that is
-- not sent, a repeated skip_unchanged=, ...) now fail every write to their
-- table rather than leak a column: name them loudly at the upgrade.
DO $$
DECLARE
    t     record;
    args  text[];
    first integer;
BEGIN
    FOR t IN
        SELECT tgrelid::regclass AS tbl, tgname, tgargs FROM pg_trigger
        WHERE tgfoid = '@extschema@.outbox_capture()'::regprocedure AND tgparentid = 0
    LOOP
        args := ARRAY[]::text[];
        first := 1;
        FOR i IN 1 .. length(t.tgargs) LOOP
            IF get_byte(t.tgargs, i - 1) = 0 THEN
                args := args || convert_from(substring(t.tgargs FROM first FOR i - first),
                                             getdatabaseencoding());
                first := i + 1;
            END IF;
        END LOOP;
        BEGIN
            PERFORM @extschema@.outbox_capture_check(t.tbl, args[1], args[2:]);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'capture trigger "%" on table % now fails every write to the table', t.tgname, t.tbl
                USING DETAIL = SQLERRM,
                      HINT = 'Capture the table again with outbox_capture_table(); see the README on keys and repeated options.';
        END;
    END LOOP;
END
$$;

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

-- Issue 9, item 11: several databases in one cluster.
-- Run at CREATE EXTENSION (and at the update from 0.1): wakes the launcher
-- once this transaction commits, so that edu_outbox.database = '*' starts
-- relaying this database, and warns if no relay serves it.
CREATE FUNCTION edu_outbox.check_database_relayed() RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'outbox_check_database_relayed';
REVOKE ALL ON FUNCTION edu_outbox.check_database_relayed() FROM PUBLIC;

SELECT edu_outbox.check_database_relayed();
