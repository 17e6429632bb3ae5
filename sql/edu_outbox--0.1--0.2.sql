-- edu_outbox 0.1 -> 0.2.
-- CREATE EXTENSION installs 0.1 and then runs this script, so this file is
-- both the upgrade path and the definition of what 0.2 adds: there is one
-- copy of each object's definition. Later versions follow the same rule
-- (edu_outbox--0.2--0.3.sql, ...); edu_outbox--0.1.sql is never edited.

\echo Use "ALTER EXTENSION edu_outbox UPDATE TO '0.2'" to load this file. \quit
