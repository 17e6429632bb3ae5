/* edu_outbox 0.2 -> 0.3. CREATE EXTENSION runs 0.1, 0.1--0.2 and this. */
\echo Use "CREATE EXTENSION edu_outbox" or "ALTER EXTENSION edu_outbox UPDATE" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 12: exactly once. In edu_outbox.delivery = 'exactly_once' mode every
-- chunk is one Kafka transaction that also carries the relay's position. The
-- position record and this row share position_seq (how many positions were
-- committed to Kafka) and state_id (which relay_state the position belongs
-- to: a dropped and re-created extension starts a new one), so a relay that
-- finds Kafka ahead of PostgreSQL, after a crash, resumes from Kafka's.
-- ---------------------------------------------------------------------------
ALTER TABLE edu_outbox.relay_state
    ADD COLUMN position_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN state_id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid();

COMMENT ON COLUMN edu_outbox.relay_state.position_seq IS
  'exactly-once mode: number of the last position committed to Kafka with its events';
COMMENT ON COLUMN edu_outbox.relay_state.state_id IS
  'identifies this relay_state in the positions the relay writes to Kafka';

-- ---------------------------------------------------------------------------
-- Issue 13: write path. A row over 2 kB (TOAST_TUPLE_THRESHOLD) had its
-- payload compressed or, if that did not shrink it enough, moved to the
-- partition's TOAST table: a 2 kB event cost a second heap insert of two
-- chunks and their index entries, and the relay read it back through that
-- index. Outbox rows live for seconds, so rows up to a page (8160 bytes)
-- now stay in the partition as they are; larger ones are still compressed
-- and moved out of line.
-- ---------------------------------------------------------------------------
ALTER TABLE edu_outbox.outbox_p0 SET (toast_tuple_target = 8160);
ALTER TABLE edu_outbox.outbox_p1 SET (toast_tuple_target = 8160);
ALTER TABLE edu_outbox.outbox_p2 SET (toast_tuple_target = 8160);
ALTER TABLE edu_outbox.outbox_p3 SET (toast_tuple_target = 8160);
