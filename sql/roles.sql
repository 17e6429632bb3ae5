-- The roles edu_outbox_monitor and edu_outbox_operator, created with the
-- extension: each can do exactly its part, and neither reads the payloads
-- of events waiting for delivery.
SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname LIKE 'edu\_outbox\_%' ORDER BY 1;
SELECT pg_has_role('edu_outbox_operator', 'edu_outbox_monitor', 'USAGE') AS operator_is_monitor;

SELECT outbox_publish('roles-topic', '{"secret": "pending"}', 'K') > 0 AS published;
INSERT INTO edu_outbox.dead_letter (id, topic, key, payload, headers, created_at, error, parked_behind)
VALUES (2000001, 'roles-dl', 'K', '{"secret": "dead"}', '{"h": "v"}', now(), 'Broker: Message size too large', NULL),
       (2000002, 'roles-dl', 'K', '{"secret": "parked"}', NULL, now(), 'held back', 2000001);

CREATE ROLE roles_monitor LOGIN IN ROLE edu_outbox_monitor;
CREATE ROLE roles_operator LOGIN IN ROLE edu_outbox_operator;

-- The monitor: status, lag, per-topic status, dead letters without payloads.
SET ROLE roles_monitor;
SELECT paused, pending_events > 0 AS has_pending, lag >= interval '0' AS lag_known, dead_letters
FROM outbox_status();
SELECT count(*) >= 0 AS topics_readable FROM outbox_topic_status;
SELECT id, topic, error, parked_behind, payload_bytes, failed_at >= created_at AS times_ok
FROM outbox_dead_letter_list ORDER BY id;
-- ... and nothing more.
SELECT payload FROM outbox_dead_letters;
SELECT payload FROM edu_outbox.outbox;
SELECT payload FROM edu_outbox.dead_letter;
SELECT * FROM edu_outbox.relay_state;
SELECT outbox_pause();
SELECT outbox_resume();
SELECT outbox_replay(1, 10);
SELECT outbox_replay(now() - interval '1 hour', now());
SELECT outbox_retry_dead_letter(2000001);
SELECT outbox_discard_dead_letter(2000001);
SELECT count(*) AS rows_visible FROM outbox_events;
RESET ROLE;

-- The operator: also pause/resume, replay, retry/discard; it reads the
-- payloads of dead letters (it decides about them), not of pending events.
SET ROLE roles_operator;
SELECT paused, pending_events > 0 AS has_pending FROM outbox_status();
SELECT count(*) >= 0 AS topics_readable FROM outbox_topic_status;
SELECT outbox_pause() AS paused_now;
SELECT outbox_resume() AS resumed_now;
SELECT outbox_replay(1, 10) AS replayed;
SELECT id, payload, headers FROM outbox_dead_letters ORDER BY id;
SELECT id, parked_behind FROM outbox_dead_letter_list ORDER BY id;
SELECT outbox_discard_dead_letter(2000001) AS requeued;
SELECT payload FROM edu_outbox.outbox;
SELECT payload FROM edu_outbox.dead_letter;
UPDATE edu_outbox.relay_state SET paused = true;
SELECT edu_outbox.set_paused(true);
RESET ROLE;

SELECT payload FROM edu_outbox.outbox WHERE topic = 'roles-dl' ORDER BY id;
DROP ROLE roles_monitor, roles_operator;
