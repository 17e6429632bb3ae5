-- outbox_publish(): the SQL surface, transactional behaviour and every
-- bad-input error. The extension is created by pg_regress --load-extension.

-- Resolves unqualified with the default search_path; returns the event id.
SHOW search_path;
SELECT outbox_publish('user-events', '{"type":"user_registered","userId":42}', '42') AS id;
SELECT outbox_publish('user-events', '{"type":"user_updated","userId":42}', '42',
                      '{"traceparent":"00-abc-01","source":"web"}') AS id;
-- key and headers are optional; a JSON null payload is a valid event body.
SELECT outbox_publish('audit.log_v2', 'null') AS id;
SELECT outbox_publish(topic => 'named-args', payload => '[1,2,3]', headers => '{}') AS id;

-- What the relay will send.
SELECT id, topic, key, payload, headers, xid <> '0'::xid8 AS has_xid,
       created_at <= clock_timestamp() AS ts_ok
FROM edu_outbox.outbox ORDER BY id;

-- Written inside the caller's transaction: the row carries its xid.
BEGIN;
SELECT outbox_publish('tx-events', '{"n":1}', 'k') AS id \gset
SELECT xid = pg_current_xact_id() AS same_transaction FROM edu_outbox.outbox WHERE id = :id;
COMMIT;

-- A rolled-back transaction leaves no event behind.
BEGIN;
SELECT outbox_publish('rolled-back', '{"n":1}') > 0 AS published;
ROLLBACK;
SELECT count(*) AS rolled_back_rows FROM edu_outbox.outbox WHERE topic = 'rolled-back';

-- Nor does a rolled-back savepoint; the rest of the transaction stays.
BEGIN;
SELECT outbox_publish('savepoints', '{"step":"kept-1"}') > 0 AS published;
SAVEPOINT s1;
SELECT outbox_publish('savepoints', '{"step":"discarded"}') > 0 AS published;
ROLLBACK TO SAVEPOINT s1;
SELECT outbox_publish('savepoints', '{"step":"kept-2"}') > 0 AS published;
COMMIT;
SELECT payload->>'step' AS step FROM edu_outbox.outbox WHERE topic = 'savepoints' ORDER BY id;

-- Bad input: each is a clear error, and the caller's transaction survives
-- it through a savepoint.
\set VERBOSITY default
SELECT outbox_publish(NULL, '{}');
SELECT outbox_publish('', '{}');
SELECT outbox_publish('.', '{}');
SELECT outbox_publish('..', '{}');
SELECT outbox_publish('user events', '{}');
SELECT outbox_publish('user/events', '{}');
SELECT outbox_publish('événements', '{}');
SELECT outbox_publish(repeat('t', 250), '{}');
SELECT outbox_publish(repeat('t', 249), '{}') > 0 AS longest_topic_ok;
SELECT outbox_publish('t', NULL);
SELECT outbox_publish('t', 'not json');
SELECT outbox_publish('t', '{}', 'k', '[1,2]');
SELECT outbox_publish('t', '{}', 'k', '"just a string"');
SELECT outbox_publish('t', '{}', 'k', '{"n": 1}');
SELECT outbox_publish('t', '{}', 'k', '{"a": "x", "b": null}');
SELECT outbox_publish('t', '{}', 'k', '{"nested": {"a": "b"}}');
SELECT outbox_publish('t', '{}', 'k', '{"outbox-id": "7"}');

\set VERBOSITY terse
BEGIN;
SAVEPOINT before_bad;
SELECT outbox_publish('bad topic', '{}');
ROLLBACK TO SAVEPOINT before_bad;
SELECT outbox_publish('after-error', '{"ok":true}') > 0 AS still_usable;
COMMIT;
SELECT count(*) AS after_error_rows FROM edu_outbox.outbox WHERE topic = 'after-error';
\set VERBOSITY default

-- Payload size limit, counted in bytes of the payload's JSON text.
SHOW edu_outbox.max_payload_size;
SET edu_outbox.max_payload_size = 20;
SELECT length('{"k": "01234567890"}') AS len_20, length('{"k": "012345678901"}') AS len_21;
SELECT outbox_publish('sized', '{"k": "01234567890"}') > 0 AS exactly_20_bytes_ok;
SELECT outbox_publish('sized', '{"k": "012345678901"}');
-- Counted on the normalized JSON text Kafka receives, not on the input.
SELECT outbox_publish('sized', '{"k"   :   "01234567890"   }') > 0 AS whitespace_not_counted;
RESET edu_outbox.max_payload_size;

-- Unicode beyond the BMP and JSON escapes are kept exactly; deep nesting is fine.
SELECT outbox_publish('unicode', '{"e": "🎓 𝄞 \u00e9 \"q\" \\ \t end"}') AS uid \gset
SELECT payload::text, octet_length(payload::text) AS bytes FROM edu_outbox.outbox WHERE id = :uid;
SELECT outbox_publish('deep', (repeat('[', 10000) || repeat(']', 10000))::jsonb) > 0 AS deep_nesting_ok;
-- jsonb itself refuses an escaped NUL and absurd depth, before outbox_publish runs.
\set VERBOSITY terse
SELECT outbox_publish('nul', '"a\u0000b"');
SELECT outbox_publish('deeper', (repeat('[', 1000000) || repeat(']', 1000000))::jsonb);
\set VERBOSITY default

-- Privileges: an application role can publish but cannot read the outbox,
-- the relay's state, or raise the payload limit.
CREATE ROLE outbox_app_role LOGIN;
SET ROLE outbox_app_role;
SELECT outbox_publish('from-app-role', '{"ok":true}') > 0 AS app_can_publish;
SELECT count(*) FROM edu_outbox.outbox;
SELECT * FROM edu_outbox.relay_state;
INSERT INTO edu_outbox.outbox (topic, payload) VALUES ('sneaky', '{}');
SET edu_outbox.max_payload_size = 100000000;
-- only the SQLSTATE: PostgreSQL 17 reworded this error
\set VERBOSITY sqlstate
SHOW edu_outbox.kafka_properties;
\set VERBOSITY default
RESET ROLE;
DROP ROLE outbox_app_role;
SELECT count(*) AS app_rows FROM edu_outbox.outbox WHERE topic = 'from-app-role';

-- Settings the worker reads are validated by check hooks.
ALTER SYSTEM SET edu_outbox.kafka_properties = 'no.such.property=1';
ALTER SYSTEM SET edu_outbox.kafka_properties = 'enable.idempotence=false';
ALTER SYSTEM SET edu_outbox.kafka_properties = 'linger.ms=soon';
ALTER SYSTEM SET edu_outbox.kafka_properties = 'linger.ms';
-- Credentials are refused in settings (PostgreSQL logs changed settings).
ALTER SYSTEM SET edu_outbox.kafka_properties = 'sasl.username=app; sasl.password=x';
ALTER SYSTEM SET edu_outbox.brokers = '';
ALTER SYSTEM SET edu_outbox.batch_size = 0;
SET edu_outbox.batch_size = 10;
SET edu_outbox.no_such_setting = 1;

-- Relay state starts with nothing delivered and no batch open.
SELECT batch_snapshot IS NULL AS no_open_batch, batch_pos_index FROM edu_outbox.relay_state;

-- The outbox is partitioned so that delivered ranges can be truncated.
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'edu_outbox.outbox'::regclass AND c.relkind = 'r' ORDER BY 1;
