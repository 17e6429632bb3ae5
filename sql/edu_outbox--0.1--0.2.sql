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
