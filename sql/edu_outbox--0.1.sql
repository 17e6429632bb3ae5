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
    updated_at          timestamptz NOT NULL DEFAULT now()
);
INSERT INTO edu_outbox.relay_state (delivered_snapshot) VALUES (pg_current_snapshot());

COMMENT ON TABLE edu_outbox.relay_state IS
  'delivery progress of the edu_outbox relay worker (one row)';

SELECT pg_catalog.pg_extension_config_dump('edu_outbox.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('edu_outbox.relay_state', '');

-- outbox_publish: the one call applications make. Runs as the extension
-- owner so callers need no privilege on the private schema.
CREATE FUNCTION @extschema@.outbox_publish(
    topic   text,
    payload jsonb,
    key     text  DEFAULT NULL,
    headers jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
LANGUAGE c SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
