-- outbox_publish(): the SQL surface, transactional behaviour and every
-- bad-input error. The extension is created by pg_regress --load-extension.

-- Ids start above the clock in microseconds (so a reinstall never goes
-- back); this file restarts them at 1 to keep its output stable.
SELECT last_value > 1700000000000000 AS ids_above_clock FROM edu_outbox.outbox_id_seq;
SELECT setval('edu_outbox.outbox_id_seq', 1, false) IS NOT NULL AS restarted;

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
-- The cheap size bound must never undercount: a control character prints as
-- six bytes (\u0001), a numeric's text can be far longer than its binary form.
SET edu_outbox.max_payload_size = 602;
SELECT length(to_jsonb(repeat(chr(1), 100))::text) AS len_602;
SELECT outbox_publish('sized', to_jsonb(repeat(chr(1), 100))) > 0 AS escaped_602_bytes_ok;
SET edu_outbox.max_payload_size = 601;
SELECT outbox_publish('sized', to_jsonb(repeat(chr(1), 100)));
SET edu_outbox.max_payload_size = 2003;
SELECT length('[1e2000]'::jsonb::text) AS len_2003;
SELECT outbox_publish('sized', '[1e2000]') > 0 AS numeric_2003_bytes_ok;
SET edu_outbox.max_payload_size = 2002;
SELECT outbox_publish('sized', '[1e2000]');
RESET edu_outbox.max_payload_size;

-- Every part of an event has a limit (SQLSTATE 54000), tested at the limit
-- and one over; the defaults fit together under the producer's
-- message.max.bytes, so an event at all default limits is accepted.
SHOW edu_outbox.max_key_size;
SHOW edu_outbox.max_headers_size;
SHOW edu_outbox.max_headers_count;
SELECT outbox_publish('limits', '{}', repeat('k', 8192)) > 0 AS key_8192_bytes_ok;
SELECT outbox_publish('limits', '{}', repeat('k', 8193));
-- bytes, not characters
SELECT outbox_publish('limits', '{}', repeat('é', 4097));
-- 64 headers whose names and values total 32768 bytes: at both limits.
CREATE TEMP TABLE hdr AS
  SELECT jsonb_object_agg(format('h%s', lpad(g::text, 2, '0')), repeat('v', 509)) AS at_limit
  FROM generate_series(0, 63) g;
SELECT outbox_publish('limits', '{}', 'k', at_limit) > 0 AS headers_64_and_32768_bytes_ok FROM hdr;
SELECT outbox_publish('limits', '{}', 'k', at_limit || jsonb_build_object('h63', repeat('v', 510))) FROM hdr;
SELECT outbox_publish('limits', '{}', 'k', at_limit || '{"h64": ""}') FROM hdr;
SELECT outbox_publish('limits', '{}', 'k', jsonb_object_agg(g::text, ''))
FROM generate_series(1, 100000) g;
-- The same limits apply to the outbox_events view.
INSERT INTO outbox_events (topic, payload, key) VALUES ('limits', '{}', repeat('k', 8193));
-- A payload, key and headers each at its default limit make one event that
-- the producer (message.max.bytes 1048576) and a default broker accept.
SELECT outbox_publish('limits', to_jsonb(repeat('p', 999998)), repeat('k', 8192), at_limit) > 0
       AS all_default_limits_ok FROM hdr;
SELECT octet_length(payload::text) AS payload_bytes, octet_length(key) AS key_bytes
FROM edu_outbox.outbox WHERE topic = 'limits' ORDER BY id DESC LIMIT 1;
-- Raising a part's limit past what the producer can send does not help: the
-- whole record (value + key + headers + outbox-id + 136 bytes of framing at
-- most) must fit message.max.bytes from edu_outbox.kafka_properties.
SET edu_outbox.max_payload_size = 2000000;
SELECT outbox_publish('limits', to_jsonb(repeat('p', 1048438))) > 0 AS record_at_producer_limit_ok;
SELECT outbox_publish('limits', to_jsonb(repeat('p', 1048439)));
ALTER SYSTEM SET edu_outbox.kafka_properties = 'message.max.bytes=2000000';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SELECT outbox_publish('limits', to_jsonb(repeat('p', 1048439))) > 0 AS raised_producer_limit_ok;
ALTER SYSTEM RESET edu_outbox.kafka_properties;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SELECT outbox_publish('limits', to_jsonb(repeat('p', 1048439)));
-- Each size error is program_limit_exceeded.
\set VERBOSITY sqlstate
SELECT outbox_publish('limits', to_jsonb(repeat('p', 1048439)));
SELECT outbox_publish('limits', '{}', repeat('k', 8193));
SELECT outbox_publish('limits', '{}', 'k', at_limit || jsonb_build_object('h63', repeat('v', 510))) FROM hdr;
SELECT outbox_publish('limits', '{}', 'k', at_limit || '{"h64": ""}') FROM hdr;
SET edu_outbox.max_payload_size = 20;
SELECT outbox_publish('limits', '{"k": "012345678901"}');
\set VERBOSITY default
RESET edu_outbox.max_payload_size;
DELETE FROM edu_outbox.outbox WHERE topic = 'limits';

-- The "outbox-" header namespace belongs to the extension, in any letter case.
SELECT outbox_publish('t', '{}', 'k', '{"Outbox-ID": "7"}');
SELECT outbox_publish('t', '{}', 'k', '{"OUTBOX-retry-of": "7"}');
SELECT outbox_publish('t', '{}', 'k', '{"outbox-replay-of": "7"}');
SELECT outbox_publish('t', '{}', 'k', '{"Outbox-Anything": "7"}');
INSERT INTO outbox_events (topic, payload, headers) VALUES ('t', '{}', '{"outbox-Retry-Of": "7"}');
SELECT outbox_publish('t', '{}', 'k', '{"x-outbox-id": "7", "outboxid": "8"}') > 0 AS other_names_ok;
-- The extension's own path for retry and replay keeps its headers, but
-- outbox-id stays the relay's even there.
SELECT edu_outbox.republish_event('t', '{}', 'k', '{"outbox-retry-of": "7", "outbox-replay-of": "6"}') AS rid \gset
SELECT headers FROM edu_outbox.outbox WHERE id = :rid;
SELECT edu_outbox.republish_event('t', '{}', 'k', '{"OUTBOX-ID": "7"}');
SELECT has_function_privilege('public', 'edu_outbox.republish_event(text, jsonb, text, jsonb)', 'EXECUTE')
       AS public_can_republish;

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
SET edu_outbox.max_key_size = 100000;
SET edu_outbox.max_headers_size = 100000;
SET edu_outbox.max_headers_count = 1000;
SELECT edu_outbox.republish_event('t', '{}', 'k', '{"outbox-retry-of": "7"}');
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
ALTER SYSTEM SET edu_outbox.chunk_max_events = 0;
SET edu_outbox.chunk_max_events = 10;
SET edu_outbox.no_such_setting = 1;

-- Relay state starts with nothing delivered and no batch open.
SELECT batch_snapshot IS NULL AS no_open_batch, batch_pos_index FROM edu_outbox.relay_state;

-- The outbox is partitioned so that delivered ranges can be truncated.
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'edu_outbox.outbox'::regclass AND c.relkind = 'r' ORDER BY 1;

-- Issue 13: the row is written without the executor while the outbox is as
-- the install scripts made it: xid and created_at as the defaults would set
-- them, and the (xid, id) index has it.
BEGIN;
SELECT outbox_publish('direct', '{"n":1}', 'k', '{"h":"v"}') AS id \gset
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT id = :id AS found_by_index, topic, key, payload, headers,
       created_at BETWEEN now() AND clock_timestamp() AS created_at_ok
FROM edu_outbox.outbox WHERE xid = pg_current_xact_id();
COMMIT;
-- Any other shape of the outbox (here a CHECK constraint an administrator
-- added) takes the executor's INSERT, with all of its checks.
ALTER TABLE edu_outbox.outbox ADD CONSTRAINT not_forbidden CHECK (topic <> 'forbidden');
\set VERBOSITY terse
SELECT outbox_publish('forbidden', '{}');
\set VERBOSITY default
SELECT outbox_publish('allowed', '{}') > 0 AS executor_insert_ok;
ALTER TABLE edu_outbox.outbox DROP CONSTRAINT not_forbidden;
SELECT outbox_publish('forbidden', '{}') > 0 AS direct_insert_again;
-- A read-only transaction is refused as an INSERT would be.
BEGIN READ ONLY;
SELECT outbox_publish('read-only', '{}');
ROLLBACK;
-- An event up to a page stays in its partition as it is: not compressed and
-- not moved to the partition's TOAST table (toast_tuple_target = 8160).
SELECT relname, reloptions FROM pg_class
WHERE relnamespace = 'edu_outbox'::regnamespace AND relname ~ '^outbox_p[0-3]$' ORDER BY 1;
BEGIN;
CREATE TEMP VIEW toast_rows AS
  SELECT coalesce(sum(n_tup_ins), 0) AS n FROM pg_stat_xact_all_tables
  WHERE relid IN (SELECT reltoastrelid FROM pg_class
                  WHERE relnamespace = 'edu_outbox'::regnamespace AND relname ~ '^outbox_p[0-3]$');
SELECT n AS toast_rows_before FROM toast_rows \gset
SELECT outbox_publish('inline', jsonb_build_object('pad', string_agg(md5(g::text), ''))) > 0 AS published
FROM generate_series(1, 100) g;
SELECT octet_length(payload::text) AS bytes, pg_column_compression(payload) AS compression
FROM edu_outbox.outbox WHERE xid = pg_current_xact_id();
SELECT n - :toast_rows_before AS toast_rows_written FROM toast_rows;
ROLLBACK;
