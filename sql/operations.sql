-- Operations from SQL: status, pause/resume, replay, dead letters, and who may use them.

SELECT paused, pending_events >= 0 AS has_pending, dead_letters FROM outbox_status();

SELECT outbox_pause() AS paused_now, outbox_pause() AS paused_again;
SELECT paused FROM outbox_status();
SELECT outbox_resume() AS resumed_now, outbox_resume() AS resumed_again;
SELECT paused FROM outbox_status();

-- Replay: bad ranges are refused; nothing retained gives a notice.
\set VERBOSITY default
SELECT outbox_replay(10, 1);
SELECT outbox_replay(NULL, 5);
SELECT outbox_replay('2026-01-02'::timestamptz, '2026-01-01'::timestamptz);
SELECT outbox_replay(900000000, 900000010);

-- Dead letters: unknown ids are refused.
SELECT outbox_retry_dead_letter(424242);
SELECT outbox_discard_dead_letter(424242);

-- Retry and discard requeue in order, with the original id in a header.
INSERT INTO edu_outbox.dead_letter (id, topic, key, payload, headers, created_at, error, parked_behind)
VALUES (1000001, 'dl-topic', 'K', '{"n": 1}', NULL, now(), 'Broker: Message size too large', NULL),
       (1000002, 'dl-topic', 'K', '{"n": 2}', '{"h": "v"}', now(), 'held back', 1000001),
       (1000003, 'dl-topic', 'K', '{"n": 3}', NULL, now(), 'held back', 1000001);
SELECT id, parked_behind FROM outbox_dead_letters ORDER BY id;
SELECT outbox_discard_dead_letter(1000001) AS requeued;
SELECT payload, headers FROM edu_outbox.outbox WHERE topic = 'dl-topic' ORDER BY id;
SELECT count(*) AS dead_letters_left FROM outbox_dead_letters;

INSERT INTO edu_outbox.dead_letter (id, topic, key, payload, headers, created_at, error, parked_behind)
VALUES (1000004, 'dl-retry', 'K', '{"n": 4}', NULL, now(), 'Broker: Message size too large', NULL);
SELECT outbox_retry_dead_letter(1000004) AS requeued;
SELECT payload, headers FROM edu_outbox.outbox WHERE topic = 'dl-retry' ORDER BY id;

-- An application role may publish but not operate the relay or read its data.
CREATE ROLE ops_app_role LOGIN;
SET ROLE ops_app_role;
SELECT * FROM outbox_status();
SELECT outbox_pause();
SELECT outbox_resume();
SELECT * FROM outbox_dead_letters;
SELECT * FROM outbox_topic_status;
SELECT outbox_replay(1, 10);
SELECT outbox_retry_dead_letter(1);
SELECT outbox_discard_dead_letter(1);
SELECT * FROM edu_outbox.dead_letter;
SELECT edu_outbox.worker_status();
ALTER SYSTEM SET edu_outbox.brokers = 'evil:9092';
RESET ROLE;
DROP ROLE ops_app_role;

-- The settings table in the README matches what the server knows.
SELECT name, boot_val, unit, context, vartype FROM pg_settings
WHERE name LIKE 'edu_outbox.%' ORDER BY name;
