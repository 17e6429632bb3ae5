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
