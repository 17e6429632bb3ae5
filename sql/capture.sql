-- outbox_capture(): payloads, type mapping, options and errors.

-- Error contexts would name line numbers of outbox_capture_table(); the
-- messages, details and hints are what this test is about.
\set SHOW_CONTEXT never

CREATE TYPE "Role" AS ENUM ('STUDENT', 'TEACHER');
CREATE TABLE "User" (
    "id"           bigserial PRIMARY KEY,
    "email"        text NOT NULL,
    "passwordHash" text,
    "role"         "Role" NOT NULL DEFAULT 'STUDENT',
    "createdAt"    timestamp(3) NOT NULL,
    "updatedAt"    timestamptz,
    "profile"      jsonb,
    "tags"         text[],
    "balance"      numeric(20, 4),
    "big"          bigint,
    "avatar"       bytea,
    "active"       boolean
);

CREATE VIEW captured AS
    SELECT topic, key, payload, headers FROM edu_outbox.outbox
    WHERE topic LIKE 'cap-%' ORDER BY id;

SELECT outbox_capture_table('"User"', 'cap-users', exclude => ARRAY['passwordHash']) AS trigger_name;

SET timezone = 'UTC';
INSERT INTO "User" ("email", "passwordHash", "role", "createdAt", "updatedAt", "profile", "tags",
                    "balance", "big", "avatar", "active")
VALUES ('ada@example.edu', 'scrypt$secret', 'TEACHER', '2026-01-02 03:04:05.678',
        '2026-01-02 03:04:05.678+00', '{"bio": "hi", "langs": ["sql"]}', '{a,"b c"}',
        1234567890.1234, 9007199254740993, '\xdeadbeef', true);
INSERT INTO "User" ("email", "createdAt") VALUES ('nulls@example.edu', '2026-01-01');

-- Every type as it appears in JSON; passwordHash appears nowhere.
SELECT key, jsonb_pretty(payload) AS payload, headers FROM captured;
SELECT count(*) AS leaked FROM captured WHERE payload::text LIKE '%secret%' OR payload::text LIKE '%passwordHash%';

TRUNCATE edu_outbox.outbox;

-- UPDATE: old and new row plus the changed columns.
UPDATE "User" SET "email" = 'ada@school.edu', "active" = false WHERE "email" = 'ada@example.edu';
SELECT key, payload->'changed' AS changed, payload->'old'->>'email' AS old_email,
       payload->'data'->>'email' AS new_email, headers FROM captured;

-- An UPDATE that changes only an excluded column is skipped ...
TRUNCATE edu_outbox.outbox;
UPDATE "User" SET "passwordHash" = 'scrypt$other';
SELECT count(*) AS events_for_excluded_change FROM captured;
-- ... and so is one that changes nothing.
UPDATE "User" SET "email" = "email";
SELECT count(*) AS events_for_no_change FROM captured;

-- DELETE: data is null, old holds the row.
DELETE FROM "User" WHERE "email" = 'nulls@example.edu';
SELECT key, payload->>'op' AS op, payload->'data' AS data, payload->'old'->>'email' AS old_email,
       headers FROM captured;

-- A rolled-back write leaves no event; a rolled-back savepoint neither.
TRUNCATE edu_outbox.outbox;
BEGIN;
INSERT INTO "User" ("email", "createdAt") VALUES ('rolled@back', now());
ROLLBACK;
BEGIN;
SAVEPOINT s;
INSERT INTO "User" ("email", "createdAt") VALUES ('savepoint@back', now());
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT count(*) AS rolled_back_events FROM captured;

-- Options: skip_unchanged off, include, ops, and a custom key.
SELECT outbox_capture_table('"User"', 'cap-users', exclude => ARRAY['passwordHash'],
                            skip_unchanged => false) AS replaced;
TRUNCATE edu_outbox.outbox;
UPDATE "User" SET "passwordHash" = 'scrypt$third';
SELECT payload->'changed' AS changed FROM captured;
SELECT outbox_uncapture_table('"User"') AS dropped;

CREATE TABLE enrollment (
    user_id   bigint,
    course_id text,
    status    text,
    note      text,
    PRIMARY KEY (user_id, course_id)
);
SELECT outbox_capture_table('enrollment', 'cap-enroll', include => ARRAY['status', 'user_id', 'course_id'],
                            ops => ARRAY['insert', 'delete']);
TRUNCATE edu_outbox.outbox;
INSERT INTO enrollment VALUES (7, 'SQL-101', 'active', 'private note');
UPDATE enrollment SET status = 'done';
DELETE FROM enrollment;
-- composite primary key: a JSON array of the key texts, in key order
SELECT key, payload->>'op' AS op, payload->'data' AS data, payload->'old' AS old FROM captured;

SELECT outbox_capture_table('enrollment', 'cap-enroll-by-course', key => ARRAY['course_id']);
TRUNCATE edu_outbox.outbox;
INSERT INTO enrollment VALUES (8, 'PG-201', 'active', NULL);
SELECT topic, key FROM captured ORDER BY topic;

-- No primary key and no key option: no Kafka key.
CREATE TABLE audit_log (msg text);
SELECT outbox_capture_table('audit_log', 'cap-audit');
TRUNCATE edu_outbox.outbox;
INSERT INTO audit_log VALUES ('hello');
SELECT key IS NULL AS no_key, payload->'data' AS data FROM captured;

-- Detaching by topic leaves the other trigger in place.
SELECT outbox_uncapture_table('enrollment', 'cap-enroll') AS dropped;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'enrollment'::regclass AND NOT tgisinternal;
SELECT outbox_uncapture_table('enrollment') AS dropped;

-- Errors.
\set VERBOSITY default
SELECT outbox_capture_table('no_such_table', 'cap-x');
SELECT outbox_capture_table('"User"', 'cap-x', exclude => ARRAY['passwordhash']);
SELECT outbox_capture_table('"User"', 'cap-x', include => ARRAY['email', 'nope']);
SELECT outbox_capture_table('"User"', 'cap-x', key => ARRAY['missing']);
SELECT outbox_capture_table('"User"', 'cap-x', include => ARRAY['email'], exclude => ARRAY['id']);
SELECT outbox_capture_table('"User"', 'cap-x', ops => ARRAY['insert', 'upsert']);
SELECT outbox_capture_table('"User"', 'cap-x', ops => ARRAY[]::text[]);
SELECT outbox_capture_table('"User"', 'bad topic');
SELECT outbox_capture_table('"User"', NULL);
SELECT outbox_capture_table('captured', 'cap-x');
SELECT outbox_capture_check('"User"', 'cap-x', ARRAY['colour=blue']);
SELECT outbox_capture_check('"User"', 'cap-x', ARRAY['skip_unchanged=maybe']);
SELECT outbox_capture_check('"User"', 'cap-x', ARRAY['exclude']);

-- Wrong kinds of trigger, and calling it directly.
CREATE TRIGGER before_capture BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION outbox_capture('cap-audit');
INSERT INTO audit_log VALUES ('before');
DROP TRIGGER before_capture ON audit_log;
CREATE TRIGGER statement_capture AFTER INSERT ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_capture('cap-audit');
INSERT INTO audit_log VALUES ('statement');
DROP TRIGGER statement_capture ON audit_log;
CREATE TRIGGER no_topic AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION outbox_capture();
INSERT INTO audit_log VALUES ('no topic');
DROP TRIGGER no_topic ON audit_log;
SELECT outbox_capture();

-- A payload over the size limit fails the write itself.
SELECT outbox_capture_table('audit_log', 'cap-audit');
SET edu_outbox.max_payload_size = 60;
INSERT INTO audit_log VALUES (repeat('x', 100));
RESET edu_outbox.max_payload_size;

-- A column dropped or added later is picked up (relcache invalidation).
TRUNCATE edu_outbox.outbox;
ALTER TABLE audit_log ADD COLUMN level int;
INSERT INTO audit_log VALUES ('with level', 3);
SELECT payload->'data' AS data FROM captured;

-- An application role captures its own table without rights on the outbox.
CREATE ROLE capture_app_role LOGIN;
GRANT CREATE ON SCHEMA public TO capture_app_role;
SET ROLE capture_app_role;
CREATE TABLE app_owned (id int PRIMARY KEY, secret text);
SELECT outbox_capture_table('app_owned', 'cap-app', exclude => ARRAY['secret']);
INSERT INTO app_owned VALUES (1, 'hidden');
SELECT count(*) FROM edu_outbox.outbox;
SELECT outbox_capture_table('"User"', 'cap-not-mine');
-- the TRIGGER privilege suffices to capture; removing takes the owner (DROP TRIGGER)
RESET ROLE;
GRANT TRIGGER ON "User" TO capture_app_role;
SET ROLE capture_app_role;
SELECT outbox_capture_table('"User"', 'cap-not-mine', exclude => ARRAY['passwordHash']);
SELECT outbox_capture_table('"User"', 'cap-not-mine', exclude => ARRAY['passwordHash', 'avatar']);
SELECT outbox_uncapture_table('"User"', 'cap-not-mine');
RESET ROLE;
SELECT outbox_uncapture_table('"User"', 'cap-not-mine') AS dropped;
REVOKE TRIGGER ON "User" FROM capture_app_role;
SELECT key, payload->'data' AS data FROM captured WHERE topic = 'cap-app';
DROP TABLE app_owned;
REVOKE CREATE ON SCHEMA public FROM capture_app_role;
DROP ROLE capture_app_role;

-- The outbox_events view: INSERT publishes, SELECT shows nothing.
INSERT INTO outbox_events (topic, key, payload, headers)
VALUES ('cap-view', 'k1', '{"via": "view"}', '{"h": "v"}')
RETURNING topic, key, payload, headers, id > 0 AS has_id, created_at IS NOT NULL AS has_ts;
SELECT count(*) AS visible_rows FROM outbox_events;
SELECT topic, key, payload, headers FROM captured WHERE topic = 'cap-view';
INSERT INTO outbox_events (topic, payload) VALUES ('bad topic', '{}');
INSERT INTO outbox_events (topic, payload, headers) VALUES ('cap-view', '{}', '{"n": 1}');

-- Issue 9: an excluded column appears nowhere in the record.
-- 1. Not in the key: a key or primary key column that is not sent is refused,
--    and an empty key list gives records without a key.
CREATE TABLE citizens (ssn text PRIMARY KEY, name text, "passwordHash" text);
SELECT outbox_capture_table('citizens', 'cap-cit', exclude => ARRAY['ssn']);
SELECT outbox_capture_table('citizens', 'cap-cit', key => ARRAY['passwordHash'],
                            exclude => ARRAY['passwordHash']);
SELECT outbox_capture_table('citizens', 'cap-cit', include => ARRAY['name']);
SELECT outbox_capture_table('citizens', 'cap-cit', key => ARRAY['name'], include => ARRAY['ssn']);
SELECT outbox_capture_table('citizens', 'cap-cit', key => ARRAY[]::text[],
                            exclude => ARRAY['ssn', 'passwordHash']);
SELECT outbox_capture_table('citizens', 'cap-cit-by-name', key => ARRAY['name'],
                            exclude => ARRAY['ssn', 'passwordHash']);
TRUNCATE edu_outbox.outbox;
INSERT INTO citizens VALUES ('123-45-6789', 'Ann', 'hunter2');
UPDATE citizens SET name = 'Anne';
DELETE FROM citizens;
SELECT topic, key, payload, headers FROM captured ORDER BY topic, payload->>'op';
SELECT count(*) AS leaked FROM edu_outbox.outbox
WHERE concat(key, payload::text, headers::text) ~ '123-45-6789|hunter2|ssn|passwordHash';
-- a trigger created by hand is checked when it fires
CREATE TRIGGER by_hand AFTER INSERT ON citizens
    FOR EACH ROW EXECUTE FUNCTION outbox_capture('cap-cit', 'exclude=ssn');
INSERT INTO citizens VALUES ('987-65-4321', 'Bob', NULL);
DROP TRIGGER by_hand ON citizens;
SELECT outbox_uncapture_table('citizens') AS dropped;

-- 2. Repeated options: lists (key, exclude, include, ops) are merged in
--    order, skip_unchanged twice is refused; nothing is silently dropped.
CREATE TABLE accounts (id int PRIMARY KEY, region text, email text, password text, ssn text);
CREATE TRIGGER repeated AFTER INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION outbox_capture('cap-acc', 'exclude=password', 'exclude=ssn',
                                                 'key=region', 'key=id', 'ops=insert', 'ops=update');
TRUNCATE edu_outbox.outbox;
INSERT INTO accounts VALUES (1, 'eu', 'a@x.edu', 'hunter2', '123-45-6789');
UPDATE accounts SET email = 'b@x.edu';
SELECT key, payload->>'op' AS op, payload->'data' AS data FROM captured;
DROP TRIGGER repeated ON accounts;
SELECT outbox_capture_check('accounts', 'cap-acc', ARRAY['include=id', 'include=email']);
SELECT outbox_capture_check('accounts', 'cap-acc', ARRAY['skip_unchanged=true', 'skip_unchanged=false']);
SELECT outbox_capture_check('accounts', 'cap-acc', ARRAY['key=id', 'key=id']);
SELECT outbox_capture_check('accounts', 'cap-acc', ARRAY['include=id', 'exclude=ssn']);

-- 3. Column lists round-trip any identifier: outbox_capture_table() quotes
--    each name, and the trigger parses quoted and plain names.
CREATE TABLE odd (id int PRIMARY KEY, a int, b int, "a,b" text, "Mixed Case" text,
                  " lead" text, "say ""hi""" text, "ünï" text, "x,""y" text);
SELECT outbox_capture_table('odd', 'cap-odd',
                            exclude => ARRAY['a,b', 'Mixed Case', ' lead', 'say "hi"', 'ünï']);
SELECT encode(tgargs, 'escape') AS trigger_args FROM pg_trigger WHERE tgname = 'outbox_capture_cap-odd';
TRUNCATE edu_outbox.outbox;
INSERT INTO odd VALUES (1, 2, 3, 'secret1', 'secret2', 'secret3', 'secret4', 'secret5', 'sent');
SELECT key, payload->'data' AS data FROM captured;
SELECT outbox_capture_table('odd', 'cap-odd', key => ARRAY['x,"y'], include => ARRAY['x,"y', 'id']);
TRUNCATE edu_outbox.outbox;
UPDATE odd SET "x,""y" = 'sent2';
SELECT key, payload->'data' AS data, payload->'changed' AS changed FROM captured;
SELECT outbox_uncapture_table('odd') AS dropped;
-- by hand: plain names are taken exactly as written, quoted ones unquoted
SELECT outbox_capture_check('odd', 'cap-odd', ARRAY['exclude="Mixed Case",a']);
SELECT outbox_capture_check('odd', 'cap-odd', ARRAY['exclude=Mixed Case']);
SELECT outbox_capture_check('odd', 'cap-odd', ARRAY['exclude="a']);
SELECT outbox_capture_check('odd', 'cap-odd', ARRAY['exclude="a"b']);
SELECT outbox_capture_check('odd', 'cap-odd', ARRAY['exclude=a,,b']);
SELECT outbox_capture_check('odd', 'cap-odd', ARRAY['exclude=a,']);
SELECT outbox_capture_check('odd', 'cap-odd', ARRAY['exclude=""']);
SELECT outbox_capture_table('odd', 'cap-odd', exclude => ARRAY['a', NULL]);
SELECT outbox_capture_table('odd', 'cap-odd', exclude => ARRAY['A']);

-- 5. Topics sharing a 63-byte prefix get triggers of their own; capturing
--    a topic again replaces its own trigger; a name taken by another
--    trigger is refused.
CREATE TABLE account (id int PRIMARY KEY, email text);
SELECT outbox_capture_table('account', 'com.example.platform.identity.domain-events.v1.account.created') AS created;
SELECT outbox_capture_table('account', 'com.example.platform.identity.domain-events.v1.account.audit-log') AS audit;
SELECT outbox_capture_table('account', 'com.example.platform.identity.domain-events.v1.account.created',
                            ops => ARRAY['insert']) AS created_again;
SELECT tgname, octet_length(tgname) AS bytes, split_part(encode(tgargs, 'escape'), '\000', 1) AS topic
FROM pg_trigger WHERE tgrelid = 'account'::regclass ORDER BY tgname;
TRUNCATE edu_outbox.outbox;
INSERT INTO account VALUES (1, 'a@x.edu');
SELECT topic FROM edu_outbox.outbox ORDER BY topic;
SELECT outbox_uncapture_table('account', 'com.example.platform.identity.domain-events.v1.account.created') AS dropped;
SELECT outbox_uncapture_table('account', 'com.example.platform.identity.domain-events.v1.account.audit-log') AS dropped;
CREATE TRIGGER "outbox_capture_cap-acc" AFTER INSERT ON account
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
SELECT outbox_capture_table('account', 'cap-acc');
DROP TRIGGER "outbox_capture_cap-acc" ON account;

-- 6. Partitioned tables: events name the table the application wrote to.
CREATE TABLE events (id int, region text, body text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE events_p_eu PARTITION OF events FOR VALUES IN ('eu');
CREATE TABLE events_p_us PARTITION OF events FOR VALUES IN ('us') PARTITION BY LIST (region);
CREATE TABLE events_p_us_all PARTITION OF events_p_us DEFAULT;
SELECT outbox_capture_table('events', 'cap-events', exclude => ARRAY['body']);
CREATE TABLE events_p_asia PARTITION OF events FOR VALUES IN ('asia');
TRUNCATE edu_outbox.outbox;
INSERT INTO events VALUES (1, 'eu', 'x'), (2, 'us', 'y'), (3, 'asia', 'z');
INSERT INTO events_p_eu VALUES (4, 'eu', 'w');
UPDATE events SET region = 'us' WHERE id = 1;
SELECT key, payload->>'op' AS op, payload->>'schema' AS schema, payload->>'table' AS "table",
       payload->'data' AS data, headers FROM captured;
-- renaming the partitioned table renames it in the partitions' events too
ALTER TABLE events RENAME TO events_renamed;
TRUNCATE edu_outbox.outbox;
INSERT INTO events_renamed VALUES (5, 'eu', 'v');
SELECT payload->>'table' AS "table", headers FROM captured;
DROP TABLE events_renamed;
-- bad operations are reported as such
SELECT outbox_capture_table('account', 'cap-acc', ops => ARRAY['']);
SELECT outbox_capture_table('account', 'cap-acc', ops => ARRAY['insert,update']);
SELECT outbox_capture_table('account', 'cap-acc', ops => ARRAY['insert', NULL]);
SELECT outbox_capture_check('account', 'cap-acc', ARRAY['ops=']);
SELECT outbox_capture_check('account', 'cap-acc', ARRAY['ops=insert,,update']);
SELECT outbox_capture_table('account', 'cap-acc', ops => ARRAY['Insert', 'insert', 'DELETE']);
SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'account'::regclass;
SELECT outbox_uncapture_table('account') AS dropped;

-- 4. ALTER TABLE never silently breaks the application's writes: a renamed
--    column is renamed in the capture triggers (an excluded column stays
--    excluded), a change that would break a trigger is refused.
CREATE TABLE members (id int PRIMARY KEY, email text, ssn text, note text);
SELECT outbox_capture_table('members', 'cap-mem', exclude => ARRAY['ssn']);
SELECT outbox_capture_table('members', 'cap-mem-inc', key => ARRAY['email'], include => ARRAY['email', 'note']);
ALTER TABLE members RENAME COLUMN ssn TO "Social Security, No.";
ALTER TABLE members RENAME COLUMN email TO mail;
SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger
WHERE tgrelid = 'members'::regclass ORDER BY tgname;
TRUNCATE edu_outbox.outbox;
INSERT INTO members VALUES (1, 'a@x.edu', '123-45-6789', 'n');
UPDATE members SET "Social Security, No." = '999-99-9999';
SELECT topic, key, payload->'data' AS data FROM captured ORDER BY topic;
-- swapping two names keeps each column's role
ALTER TABLE members RENAME COLUMN "Social Security, No." TO tmp;
ALTER TABLE members RENAME COLUMN note TO "Social Security, No.";
ALTER TABLE members RENAME COLUMN tmp TO note;
TRUNCATE edu_outbox.outbox;
INSERT INTO members VALUES (2, 'b@x.edu', 'note text', '111-11-1111');
SELECT topic, key, payload->'data' AS data FROM captured ORDER BY topic;
-- dropping a column a capture names is refused; other columns can go
ALTER TABLE members DROP COLUMN note;
ALTER TABLE members DROP COLUMN mail;
ALTER TABLE members ADD COLUMN extra int, DROP COLUMN "Social Security, No.";
INSERT INTO members VALUES (3, 'c@x.edu', 'ok', 5);
SELECT outbox_uncapture_table('members', 'cap-mem-inc') AS dropped;
ALTER TABLE members DROP COLUMN mail;
ALTER TABLE members DROP COLUMN note;
SELECT outbox_capture_table('members', 'cap-mem') AS recaptured;
ALTER TABLE members DROP COLUMN note;
SELECT outbox_uncapture_table('members') AS dropped;
DROP TABLE members;
-- a primary key added later on an excluded column would become the key: refused
CREATE TABLE nopk (ssn text NOT NULL, name text);
SELECT outbox_capture_table('nopk', 'cap-nopk', exclude => ARRAY['ssn']);
ALTER TABLE nopk ADD PRIMARY KEY (ssn);
ALTER TABLE nopk ADD PRIMARY KEY (name);
DROP TABLE nopk;
-- partitions follow their partitioned table, inheritors renamed along too
CREATE TABLE pevents (id int, region text, secret text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE pevents_eu PARTITION OF pevents FOR VALUES IN ('eu');
SELECT outbox_capture_table('pevents', 'cap-pev', exclude => ARRAY['secret']);
ALTER TABLE pevents RENAME COLUMN secret TO hidden;
TRUNCATE edu_outbox.outbox;
INSERT INTO pevents VALUES (1, 'eu', 'psst');
SELECT payload FROM captured;
ALTER TABLE pevents DROP COLUMN hidden;
DROP TABLE pevents;
-- a table owner without any right on the extension renames a column
CREATE ROLE capture_owner LOGIN;
CREATE TABLE owned (id int PRIMARY KEY, pin text);
ALTER TABLE owned OWNER TO capture_owner;
SELECT outbox_capture_table('owned', 'cap-owned', exclude => ARRAY['pin']);
SET ROLE capture_owner;
ALTER TABLE owned RENAME COLUMN pin TO "PIN";
INSERT INTO owned VALUES (1, '0000');
ALTER TABLE owned DROP COLUMN "PIN";
RESET ROLE;
SELECT payload->'data' AS data FROM captured WHERE topic = 'cap-owned';
DROP TABLE owned;
DROP ROLE capture_owner;
