-- edu_outbox 0.1 -> 0.2.
-- CREATE EXTENSION installs 0.1 and then runs this script, so this file is
-- both the upgrade path and the definition of what 0.2 adds: there is one
-- copy of each object's definition. Later versions follow the same rule
-- (edu_outbox--0.2--0.3.sql, ...); edu_outbox--0.1.sql is never edited.

\echo Use "ALTER EXTENSION edu_outbox UPDATE TO '0.2'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 9, privacy of captured rows: column names are quoted in the trigger
-- arguments, so that any identifier round-trips ("a,b", mixed case, spaces).

CREATE OR REPLACE FUNCTION @extschema@.outbox_capture_table(
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
    IF array_position(key, NULL) IS NOT NULL OR array_position(exclude, NULL) IS NOT NULL
       OR array_position(include, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'column lists of outbox_capture_table() must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF ops IS NULL OR cardinality(ops) = 0 THEN
        RAISE EXCEPTION 'outbox_capture_table() needs at least one operation to capture'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass ops => ARRAY[''insert'', ''update'', ''delete''] or a subset.';
    END IF;
    -- each name in double quotes ("" inside), as outbox_capture() parses them
    IF key IS NOT NULL THEN
        args := args || ('key=' || array_to_string(
            ARRAY(SELECT '"' || replace(c, '"', '""') || '"' FROM unnest(key) AS c), ','));
    END IF;
    IF exclude IS NOT NULL THEN
        args := args || ('exclude=' || array_to_string(
            ARRAY(SELECT '"' || replace(c, '"', '""') || '"' FROM unnest(exclude) AS c), ','));
    END IF;
    IF include IS NOT NULL THEN
        args := args || ('include=' || array_to_string(
            ARRAY(SELECT '"' || replace(c, '"', '""') || '"' FROM unnest(include) AS c), ','));
    END IF;
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
