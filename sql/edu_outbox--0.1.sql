-- edu_outbox 0.1 install script.
-- Public functions go into the extension's schema (public by default, so
-- outbox_publish() resolves unqualified); the relay's tables live in the
-- private schema edu_outbox.

\echo Use "CREATE EXTENSION edu_outbox" to load this file. \quit

CREATE SCHEMA edu_outbox;
REVOKE ALL ON SCHEMA edu_outbox FROM PUBLIC;
COMMENT ON SCHEMA edu_outbox IS 'private state of the edu_outbox extension';

-- The outbox. Rows are never updated or deleted one by one: the relay tracks
-- progress with snapshots (see relay_state) and reclaims space by truncating
-- whole partitions, so a busy outbox leaves no dead tuples behind.
-- Partition = (id / 65536) % 4: ids move through the partitions in turn, and
-- the partition the sequence will enter next is truncated once every row in
-- it has been delivered. Between 2 and 3 ranges of delivered events stay
-- retained.
CREATE SEQUENCE edu_outbox.outbox_id_seq AS bigint;

CREATE TABLE edu_outbox.outbox (
    id          bigint      NOT NULL DEFAULT nextval('edu_outbox.outbox_id_seq'),
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    topic       text        NOT NULL,
    key         text,
    payload     jsonb       NOT NULL,
    headers     jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
) PARTITION BY LIST (((id / 65536) % 4));

ALTER SEQUENCE edu_outbox.outbox_id_seq OWNED BY edu_outbox.outbox.id;

CREATE TABLE edu_outbox.outbox_p0 PARTITION OF edu_outbox.outbox FOR VALUES IN (0);
CREATE TABLE edu_outbox.outbox_p1 PARTITION OF edu_outbox.outbox FOR VALUES IN (1);
CREATE TABLE edu_outbox.outbox_p2 PARTITION OF edu_outbox.outbox FOR VALUES IN (2);
CREATE TABLE edu_outbox.outbox_p3 PARTITION OF edu_outbox.outbox FOR VALUES IN (3);

-- A batch selects rows by writing transaction; within one, rows go by id.
CREATE INDEX outbox_xid_id_idx ON edu_outbox.outbox (xid, id);

COMMENT ON TABLE edu_outbox.outbox IS
  'events written by outbox_publish(), relayed to Kafka by the edu_outbox worker';

-- The relay's progress, one row. Everything visible in delivered_snapshot
-- has been acknowledged by Kafka. While a batch is open, batch_snapshot is
-- its end and batch_pos_* say how far into it delivery got.
CREATE TABLE edu_outbox.relay_state (
    singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    delivered_snapshot  pg_snapshot NOT NULL,
    batch_snapshot      pg_snapshot,
    batch_pos_index     integer NOT NULL DEFAULT 0,
    batch_pos_xid       xid8,
    batch_pos_done      integer NOT NULL DEFAULT 0,
    batch_pos_last_id   bigint NOT NULL DEFAULT 0,
    paused              boolean NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
INSERT INTO edu_outbox.relay_state (delivered_snapshot) VALUES (pg_current_snapshot());

COMMENT ON TABLE edu_outbox.relay_state IS
  'delivery progress of the edu_outbox relay worker (one row)';

-- Events the broker refused for good (poison messages), and events parked
-- behind them so that nothing overtakes them within their topic and key.
CREATE TABLE edu_outbox.dead_letter (
    id            bigint PRIMARY KEY,      -- the event's outbox id
    topic         text NOT NULL,
    key           text,
    payload       jsonb NOT NULL,
    headers       jsonb,
    created_at    timestamptz NOT NULL,
    error         text NOT NULL,
    failed_at     timestamptz NOT NULL DEFAULT now(),
    parked_behind bigint REFERENCES edu_outbox.dead_letter (id) ON DELETE SET NULL
);
CREATE INDEX dead_letter_parked_behind_idx ON edu_outbox.dead_letter (parked_behind);

COMMENT ON TABLE edu_outbox.dead_letter IS
  'events Kafka refused for good (parked_behind IS NULL), and events of the same topic and key held back behind them';

SELECT pg_catalog.pg_extension_config_dump('edu_outbox.dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('edu_outbox.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('edu_outbox.relay_state', '');

-- outbox_publish: the one call applications make. The C code writes the row
-- as the outbox's owner (see outbox_write_event), so callers need no
-- privilege on the private schema; it is not SECURITY DEFINER, which would
-- cost a configuration save and restore on every call.
CREATE FUNCTION @extschema@.outbox_publish(
    topic   text,
    payload jsonb,
    key     text  DEFAULT NULL,
    headers jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_publish';

COMMENT ON FUNCTION @extschema@.outbox_publish(text, jsonb, text, jsonb) IS
  'writes an event to the outbox inside the current transaction; the edu_outbox worker sends it to Kafka after commit';

REVOKE ALL ON FUNCTION @extschema@.outbox_publish(text, jsonb, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_publish(text, jsonb, text, jsonb) TO PUBLIC;

-- ---------------------------------------------------------------------------
-- The outbox_events view: lets an ORM (e.g. a Prisma model) write events
-- with a plain INSERT ... RETURNING. Inserts go through the same checks as
-- outbox_publish(); selecting from it shows nothing, so it cannot be used
-- to read other people's payloads.
CREATE TYPE edu_outbox.published_event AS (id bigint, created_at timestamptz);

CREATE FUNCTION edu_outbox.publish_event(
    topic text, payload jsonb, key text DEFAULT NULL, headers jsonb DEFAULT NULL)
RETURNS edu_outbox.published_event
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_publish_event';

COMMENT ON FUNCTION edu_outbox.publish_event(text, jsonb, text, jsonb) IS
  'outbox_publish() returning the id and created_at of the new event (used by the outbox_events view)';

CREATE VIEW @extschema@.outbox_events AS
    SELECT id, topic, key, payload, headers, created_at
    FROM edu_outbox.outbox
    WHERE false;

COMMENT ON VIEW @extschema@.outbox_events IS
  'insert-only view over the outbox for ORMs: INSERT publishes an event (like outbox_publish); SELECT returns no rows';

CREATE FUNCTION edu_outbox.outbox_events_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT e.id, e.created_at INTO NEW.id, NEW.created_at
    FROM edu_outbox.publish_event(NEW.topic, NEW.payload, NEW.key, NEW.headers) AS e;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION edu_outbox.outbox_events_insert() IS
  'INSTEAD OF INSERT trigger of the outbox_events view';

CREATE TRIGGER outbox_events_insert
    INSTEAD OF INSERT ON @extschema@.outbox_events
    FOR EACH ROW EXECUTE FUNCTION edu_outbox.outbox_events_insert();

REVOKE ALL ON @extschema@.outbox_events FROM PUBLIC;
GRANT SELECT, INSERT ON @extschema@.outbox_events TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Capturing ordinary table writes.

CREATE FUNCTION @extschema@.outbox_capture() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'outbox_capture';

COMMENT ON FUNCTION @extschema@.outbox_capture() IS
  'AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW trigger: writes each row change to the outbox; arguments: topic, then key=, exclude=, include=, ops=, skip_unchanged= options';

REVOKE ALL ON FUNCTION @extschema@.outbox_capture() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_capture() TO PUBLIC;

CREATE FUNCTION @extschema@.outbox_capture_check(tbl regclass, topic text, options text[])
RETURNS void
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'outbox_capture_check';

COMMENT ON FUNCTION @extschema@.outbox_capture_check(regclass, text, text[]) IS
  'raises the error outbox_capture() would raise for these trigger arguments on this table, if any';

REVOKE ALL ON FUNCTION edu_outbox.publish_event(text, jsonb, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION edu_outbox.outbox_events_insert() FROM PUBLIC;

CREATE FUNCTION @extschema@.outbox_capture_table(
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
    trg      name;
BEGIN
    IF ops IS NULL OR cardinality(ops) = 0 THEN
        RAISE EXCEPTION 'outbox_capture_table() needs at least one operation to capture'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass ops => ARRAY[''insert'', ''update'', ''delete''] or a subset.';
    END IF;
    IF key IS NOT NULL THEN args := args || ('key=' || array_to_string(key, ',')); END IF;
    IF exclude IS NOT NULL THEN args := args || ('exclude=' || array_to_string(exclude, ',')); END IF;
    IF include IS NOT NULL THEN args := args || ('include=' || array_to_string(include, ',')); END IF;
    args := args || ('ops=' || array_to_string(ops, ','))
                 || ('skip_unchanged=' || skip_unchanged::text);
    PERFORM @extschema@.outbox_capture_check(tbl, topic, args);

    IF 'insert' = ANY (lower(ops::text)::text[]) THEN events := events || 'INSERT'::text; END IF;
    IF 'update' = ANY (lower(ops::text)::text[]) THEN events := events || 'UPDATE'::text; END IF;
    IF 'delete' = ANY (lower(ops::text)::text[]) THEN events := events || 'DELETE'::text; END IF;

    trg := left('outbox_capture_' || topic, 63);
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s FOR EACH ROW EXECUTE FUNCTION %I.outbox_capture(%s)',
                   trg, array_to_string(events, ' OR '), tbl, '@extschema@',
                   (SELECT string_agg(quote_literal(a), ', ')
                    FROM unnest(ARRAY[topic] || args) AS a));
    RETURN trg;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_capture_table(regclass, text, text[], text[], text[], text[], boolean) IS
  'attaches an outbox_capture() trigger to a table and returns its name; NULL key means the primary key';

CREATE FUNCTION @extschema@.outbox_uncapture_table(tbl regclass, topic text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t       record;
    dropped integer := 0;
BEGIN
    FOR t IN
        SELECT tgname, tgargs FROM pg_trigger
        WHERE tgrelid = tbl
          AND tgfoid = '@extschema@.outbox_capture()'::regprocedure
          AND NOT tgisinternal
    LOOP
        IF topic IS NULL OR split_part(encode(t.tgargs, 'escape'), '\000', 1) = topic THEN
            EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, tbl);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_uncapture_table(regclass, text) IS
  'drops the outbox_capture() triggers of a table (only those for topic, if given); returns how many';

-- ---------------------------------------------------------------------------
-- Operations: status, pause/resume, dead letters, replay. These run with the
-- caller's rights: only superusers and the extension's owner can read the
-- private tables they use.

CREATE FUNCTION edu_outbox.wake_relay_at_commit() RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'outbox_wake_relay_at_commit';
REVOKE ALL ON FUNCTION edu_outbox.wake_relay_at_commit() FROM PUBLIC;

CREATE FUNCTION edu_outbox.worker_status(
    OUT worker_pid integer, OUT worker_state text, OUT started_at timestamptz,
    OUT producer_state text, OUT delivered bigint, OUT last_delivery_at timestamptz,
    OUT dead_lettered bigint, OUT last_error text, OUT last_error_at timestamptz)
RETURNS record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'outbox_worker_status';
REVOKE ALL ON FUNCTION edu_outbox.worker_status() FROM PUBLIC;

CREATE FUNCTION edu_outbox.topic_stats(
    OUT topic text, OUT delivered bigint, OUT last_delivery_at timestamptz)
RETURNS SETOF record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'outbox_topic_stats';
REVOKE ALL ON FUNCTION edu_outbox.topic_stats() FROM PUBLIC;

CREATE FUNCTION @extschema@.outbox_status(
    OUT worker_pid integer,
    OUT worker_state text,
    OUT paused boolean,
    OUT producer_state text,
    OUT pending_events bigint,
    OUT oldest_pending_at timestamptz,
    OUT lag interval,
    OUT delivered_since_start bigint,
    OUT last_delivery_at timestamptz,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT dead_letters bigint,
    OUT started_at timestamptz)
RETURNS record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS (SELECT delivered_snapshot, paused FROM edu_outbox.relay_state),
         pending AS (
            SELECT count(*) AS n, min(o.created_at) AS oldest
            FROM edu_outbox.outbox o, s
            WHERE o.xid >= pg_snapshot_xmin(s.delivered_snapshot)
              AND NOT pg_visible_in_snapshot(o.xid, s.delivered_snapshot))
    SELECT w.worker_pid, w.worker_state, s.paused, w.producer_state,
           pending.n, pending.oldest,
           CASE WHEN pending.oldest IS NULL THEN interval '0' ELSE clock_timestamp() - pending.oldest END,
           w.delivered, w.last_delivery_at, w.last_error, w.last_error_at,
           (SELECT count(*) FROM edu_outbox.dead_letter),
           w.started_at
    FROM s, pending, edu_outbox.worker_status() w
$$;

COMMENT ON FUNCTION @extschema@.outbox_status() IS
  'one row describing the relay: worker, pending events and lag, deliveries, last error, dead letters';

CREATE VIEW @extschema@.outbox_topic_status AS
    SELECT topic, delivered, last_delivery_at FROM edu_outbox.topic_stats();
REVOKE ALL ON @extschema@.outbox_topic_status FROM PUBLIC;

COMMENT ON VIEW @extschema@.outbox_topic_status IS
  'events delivered per topic since the relay worker started';

-- Sets the pause flag, wakes the relay at commit, returns the previous value.
CREATE FUNCTION edu_outbox.set_paused(pause boolean) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE was boolean;
BEGIN
    SELECT paused INTO was FROM edu_outbox.relay_state FOR UPDATE;
    UPDATE edu_outbox.relay_state SET paused = pause;
    PERFORM edu_outbox.wake_relay_at_commit();
    RETURN was;
END
$$;
REVOKE ALL ON FUNCTION edu_outbox.set_paused(boolean) FROM PUBLIC;

CREATE FUNCTION @extschema@.outbox_pause() RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT NOT edu_outbox.set_paused(true) $$;

COMMENT ON FUNCTION @extschema@.outbox_pause() IS
  'stops delivery to Kafka after the chunk in flight (publishing goes on); returns false if already paused';

CREATE FUNCTION @extschema@.outbox_resume() RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT edu_outbox.set_paused(false) $$;

COMMENT ON FUNCTION @extschema@.outbox_resume() IS
  'resumes delivery where it stopped, in order; returns false if it was not paused';

CREATE VIEW @extschema@.outbox_dead_letters AS
    SELECT id, topic, key, payload, headers, created_at, error, failed_at, parked_behind
    FROM edu_outbox.dead_letter;
REVOKE ALL ON @extschema@.outbox_dead_letters FROM PUBLIC;

COMMENT ON VIEW @extschema@.outbox_dead_letters IS
  'events Kafka refused for good, and (parked_behind not null) events held back behind them';

-- Publishes a dead letter and everything parked behind it again, in order.
CREATE FUNCTION edu_outbox.requeue_dead_letters(head bigint, include_head boolean)
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
            PERFORM edu_outbox.publish_event(d.topic, d.payload, d.key,
                        coalesce(d.headers, '{}'::jsonb) || jsonb_build_object('outbox-retry-of', d.id::text));
            n := n + 1;
        END IF;
    END LOOP;
    DELETE FROM edu_outbox.dead_letter WHERE parked_behind = head;
    DELETE FROM edu_outbox.dead_letter WHERE id = head;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION edu_outbox.requeue_dead_letters(bigint, boolean) FROM PUBLIC;

CREATE FUNCTION @extschema@.outbox_retry_dead_letter(id bigint) RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT edu_outbox.requeue_dead_letters(id, true) $$;

COMMENT ON FUNCTION @extschema@.outbox_retry_dead_letter(bigint) IS
  'publishes a dead letter again, followed by the events parked behind it; returns how many events were requeued';

CREATE FUNCTION @extschema@.outbox_discard_dead_letter(id bigint) RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT edu_outbox.requeue_dead_letters(id, false) $$;

COMMENT ON FUNCTION @extschema@.outbox_discard_dead_letter(bigint) IS
  'drops a dead letter for good and publishes the events parked behind it; returns how many were requeued';

-- Replay: delivered events that are still retained are published again
-- (new ids, header outbox-replay-of = the original id), in id order.
CREATE FUNCTION edu_outbox.replay(from_id bigint, to_id bigint,
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
        PERFORM edu_outbox.publish_event(e.topic, e.payload, e.key,
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
REVOKE ALL ON FUNCTION edu_outbox.replay(bigint, bigint, timestamptz, timestamptz) FROM PUBLIC;

CREATE FUNCTION @extschema@.outbox_replay(from_id bigint, to_id bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF from_id IS NULL OR to_id IS NULL OR from_id > to_id THEN
        RAISE EXCEPTION 'invalid replay range'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('from_id is %s and to_id is %s.',
                                  coalesce(from_id::text, 'NULL'), coalesce(to_id::text, 'NULL')),
                  HINT = 'Give a non-null range with from_id <= to_id.';
    END IF;
    RETURN edu_outbox.replay(from_id, to_id, NULL, NULL);
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_replay(bigint, bigint) IS
  'publishes retained, already delivered events with ids in the range again; returns how many';

CREATE FUNCTION @extschema@.outbox_replay(from_time timestamptz, to_time timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF from_time IS NULL OR to_time IS NULL OR from_time > to_time THEN
        RAISE EXCEPTION 'invalid replay range'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a non-null range with from_time <= to_time.';
    END IF;
    RETURN edu_outbox.replay(NULL, NULL, from_time, to_time);
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_replay(timestamptz, timestamptz) IS
  'publishes retained, already delivered events written in the time range again; returns how many';

-- Operators' functions are not for PUBLIC: they read the private tables.
REVOKE ALL ON FUNCTION @extschema@.outbox_status() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.outbox_pause() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.outbox_resume() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.outbox_retry_dead_letter(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.outbox_discard_dead_letter(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.outbox_replay(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.outbox_replay(timestamptz, timestamptz) FROM PUBLIC;
