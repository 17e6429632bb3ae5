/*
 * capture_trigger.c: outbox_capture(), a row trigger that turns ordinary
 * INSERT/UPDATE/DELETE (for example Prisma's) into outbox events, in the
 * same transaction as the write.
 *
 * Trigger arguments: the topic, then options as name=value strings
 * (column lists are comma-separated, names exactly as in the catalog or in
 * double quotes, see next_column_name):
 *   key=col[,col]        Kafka key columns (default: the primary key)
 *   exclude=col[,col]    columns never sent (e.g. passwordHash)
 *   include=col[,col]    send only these columns
 *   ops=insert,update,delete    which operations to capture
 *   skip_unchanged=true|false   skip an UPDATE that changed no sent column
 *
 * Parsed options are cached per trigger and dropped when the table's
 * relcache entry is invalidated (ALTER TABLE, CREATE OR REPLACE TRIGGER).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/varlena.h"

#include "capture_trigger.h"
#include "compat.h"
#include "publish.h"

PG_FUNCTION_INFO_V1(outbox_capture);
PG_FUNCTION_INFO_V1(outbox_capture_check);

enum
{
	OP_INSERT = 0,
	OP_UPDATE,
	OP_DELETE,
	NUM_OPS
};
static const char *const op_names[NUM_OPS] = {"insert", "update", "delete"};

typedef struct CaptureOptions
{
	Datum		topic;			/* text */
	int			nkeys;
	AttrNumber *key_attnums;
	FmgrInfo   *key_out;		/* output functions of the key columns */
	int			ncols;			/* sent columns, in table order */
	AttrNumber *col_attnums;
	TupleDesc	row_desc;		/* blessed record of the sent columns */
	bool		ops[NUM_OPS];
	bool		skip_unchanged;
	char	   *schema;
	char	   *table;
	Datum		headers[NUM_OPS];	/* jsonb {"event-type": "<table>.<op>"} */
	FmgrInfo	to_jsonb;		/* to_jsonb(record), with fn_expr for its type */
} CaptureOptions;

typedef struct CaptureCacheEntry
{
	Oid			tgoid;			/* hash key */
	Oid			relid;
	Oid			rootid;			/* the captured table (see captured_table) */
	bool		valid;
	MemoryContext cxt;
	CaptureOptions opts;
} CaptureCacheEntry;

static HTAB *capture_cache = NULL;

static void
invalidate_capture_cache(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	CaptureCacheEntry *entry;

	if (capture_cache == NULL)
		return;
	hash_seq_init(&status, capture_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (relid == InvalidOid || entry->relid == relid || entry->rootid == relid)
			entry->valid = false;
}

/*
 * Next column name of a list, or NULL at its end; *pos advances past it.
 * A name is either written as is (up to the next comma, case kept) or in
 * double quotes with "" for a quote inside, so that any identifier - "a,b",
 * " x", "say ""hi""" - round-trips; outbox_capture_table() quotes them all.
 */
static char *
next_column_name(const char *option, const char **pos)
{
	const char *p = *pos;
	StringInfoData name;

	if (*p == '\0')
		return NULL;
	initStringInfo(&name);
	if (*p == '"')
	{
		for (p++;; p++)
		{
			if (*p == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unterminated quoted column name in option \"%s\" of outbox_capture()", option)));
			if (*p == '"')
			{
				if (p[1] != '"')
					break;
				p++;
			}
			appendStringInfoChar(&name, *p);
		}
		p++;
		if (*p != ',' && *p != '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid column list in option \"%s\" of outbox_capture()", option),
					 errdetail("A quoted column name must be followed by a comma or the end of the list.")));
	}
	else
		for (; *p != ',' && *p != '\0'; p++)
			appendStringInfoChar(&name, *p);
	if (name.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("empty column name in option \"%s\" of outbox_capture()", option)));
	if (*p == ',')
	{
		p++;
		if (*p == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("empty column name in option \"%s\" of outbox_capture()", option)));
	}
	*pos = p;
	return name.data;
}

/*
 * Appends the columns of a list (see next_column_name) to *attnums (n so
 * far, returns the new count); unknown names are an error. A list option
 * given several times thus names the columns of all its occurrences.
 */
static int
parse_columns(Relation rel, const char *option, const char *list, AttrNumber **attnums, int n)
{
	const char *pos = list;
	char	   *tok;
	int			first = n;
	TupleDesc	desc = RelationGetDescr(rel);

	while ((tok = next_column_name(option, &pos)) != NULL)
	{
		AttrNumber	attnum = InvalidAttrNumber;

		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped && strcmp(NameStr(att->attname), tok) == 0)
				attnum = att->attnum;
		}
		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							tok, RelationGetRelationName(rel)),
					 errdetail("Option \"%s\" of outbox_capture() names it.", option),
					 errhint("Column names are matched exactly, including case; write a name that holds a comma or starts with a double quote in double quotes.")));
		*attnums = *attnums ? repalloc(*attnums, sizeof(AttrNumber) * (n + 1))
			: palloc(sizeof(AttrNumber) * (n + 1));
		(*attnums)[n++] = attnum;
	}
	if (n == first)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" of outbox_capture() names no column", option)));
	return n;
}

static bool
parse_bool_option(const char *option, const char *value)
{
	bool		result;

	if (!parse_bool(value, &result))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" of outbox_capture() requires a Boolean value", option)));
	return result;
}

/* Adds the operations of "insert,update" to ops. */
static void
parse_ops(const char *value, bool *ops)
{
	List	   *names = NIL;
	ListCell   *lc;

	if (!SplitIdentifierString(pstrdup(value), ',', &names) || names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list of operations \"%s\" in option \"ops\" of outbox_capture()", value),
				 errhint("Use a comma-separated list of insert, update and delete.")));
	foreach(lc, names)
	{
		const char *tok = lfirst(lc);
		int			i;

		for (i = 0; i < NUM_OPS; i++)
			if (pg_strcasecmp(tok, op_names[i]) == 0)
				break;
		if (i == NUM_OPS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown operation \"%s\" in option \"ops\" of outbox_capture()", tok),
					 errhint("Use a comma-separated list of insert, update and delete.")));
		ops[i] = true;
	}
}

/* The primary key's columns in index order, or 0 if the table has none. */
static int
primary_key_columns(Relation rel, AttrNumber **attnums)
{
	Oid			pk = compat_primary_key_index(rel);
	Relation	idx;
	int			n;

	if (!OidIsValid(pk))
		return 0;
	idx = index_open(pk, AccessShareLock);
	n = idx->rd_index->indnkeyatts;
	*attnums = palloc(sizeof(AttrNumber) * n);
	for (int i = 0; i < n; i++)
		(*attnums)[i] = idx->rd_index->indkey.values[i];
	index_close(idx, AccessShareLock);
	return n;
}

static Datum
event_type_headers(const char *table, const char *op)
{
	JsonbParseState *state = NULL;
	JsonbValue	k,
				v;
	char	   *type = psprintf("%s.%s", table, op);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "event-type";
	k.val.string.len = strlen("event-type");
	pushJsonbValue(&state, WJB_KEY, &k);
	v.type = jbvString;
	v.val.string.val = type;
	v.val.string.len = strlen(type);
	pushJsonbValue(&state, WJB_VALUE, &v);
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}

/*
 * The table a capture was defined on. A trigger on a partitioned table is
 * cloned to each partition and fires there; the event names the table the
 * application wrote to, so follow the clone's parents up to the root.
 */
static Oid
captured_table(Trigger *trigger, Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	Oid			tgoid = trigger->tgoid;
	Relation	tgrel;

	if (!trigger->tgisclone)
		return relid;
	tgrel = table_open(TriggerRelationId, AccessShareLock);
	while (OidIsValid(tgoid))
	{
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(tgoid));
		scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			relid = ((Form_pg_trigger) GETSTRUCT(tup))->tgrelid;
			tgoid = ((Form_pg_trigger) GETSTRUCT(tup))->tgparentid;
		}
		else
			tgoid = InvalidOid;
		systable_endscan(scan);
	}
	table_close(tgrel, AccessShareLock);
	return relid;
}

/*
 * Parses trigger arguments against rel into opts (allocated in the current
 * memory context). Every problem is reported here, so outbox_capture_check()
 * can reject a bad definition before the trigger is created. rootid is the
 * captured table, whose name the events carry; rel is the table the trigger
 * fires on (rootid itself or one of its partitions).
 */
static void
parse_capture_options(Relation rel, Oid rootid, int nargs, char **args, CaptureOptions *opts)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber *exclude = NULL,
			   *include = NULL;
	int			nexclude = 0,
				ninclude = 0;
	bool	   *sent;
	bool		key_given = false;
	bool		ops_given = false;
	bool		skip_unchanged_given = false;
	text	   *topic;

	memset(opts, 0, sizeof(*opts));
	if (nargs < 1 || args[0] == NULL || args[0][0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox_capture() needs the Kafka topic as its first argument"),
				 errhint("Use EXECUTE FUNCTION outbox_capture('topic-name', ...).")));
	topic = cstring_to_text(args[0]);
	outbox_check_topic(topic);
	opts->topic = PointerGetDatum(topic);
	for (int i = 0; i < NUM_OPS; i++)
		opts->ops[i] = true;
	opts->skip_unchanged = true;

	for (int i = 1; i < nargs; i++)
	{
		char	   *eq = strchr(args[i], '=');
		char	   *name;
		char	   *value;

		if (eq == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid outbox_capture() option \"%s\"", args[i]),
					 errhint("Options have the form name=value, e.g. 'exclude=passwordHash'.")));
		name = pnstrdup(args[i], eq - args[i]);
		value = eq + 1;
		if (strcmp(name, "key") == 0)
		{
			/* an empty list asks for records without a key */
			key_given = true;
			if (value[0] != '\0')
				opts->nkeys = parse_columns(rel, name, value, &opts->key_attnums, opts->nkeys);
		}
		else if (strcmp(name, "exclude") == 0)
			nexclude = parse_columns(rel, name, value, &exclude, nexclude);
		else if (strcmp(name, "include") == 0)
			ninclude = parse_columns(rel, name, value, &include, ninclude);
		else if (strcmp(name, "ops") == 0)
		{
			if (!ops_given)
				memset(opts->ops, 0, sizeof(opts->ops));
			ops_given = true;
			parse_ops(value, opts->ops);
		}
		else if (strcmp(name, "skip_unchanged") == 0)
		{
			/* two values cannot be merged: refuse rather than keep one */
			if (skip_unchanged_given)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" of outbox_capture() is given more than once", name)));
			skip_unchanged_given = true;
			opts->skip_unchanged = parse_bool_option(name, value);
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown outbox_capture() option \"%s\"", name),
					 errhint("Valid options are key, exclude, include, ops and skip_unchanged.")));
	}
	if (nexclude > 0 && ninclude > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox_capture() options \"include\" and \"exclude\" cannot be combined")));

	/* Sent columns: all live ones, minus exclude, or only include. */
	sent = palloc0(sizeof(bool) * (desc->natts + 1));
	for (int i = 0; i < desc->natts; i++)
		sent[i + 1] = ninclude == 0 && !TupleDescAttr(desc, i)->attisdropped;
	for (int i = 0; i < nexclude; i++)
		sent[exclude[i]] = false;
	for (int i = 0; i < ninclude; i++)
		sent[include[i]] = true;

	/*
	 * The key is part of the record: a column that is not sent must not
	 * reach Kafka through it either, whether it was named in key= or is part
	 * of the primary key used by default.
	 */
	if (!key_given)
		opts->nkeys = primary_key_columns(rel, &opts->key_attnums);
	for (int i = 0; i < opts->nkeys; i++)
		for (int j = 0; j < i; j++)
			if (opts->key_attnums[i] == opts->key_attnums[j])
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" appears more than once in option \"key\" of outbox_capture()",
								NameStr(TupleDescAttr(desc, opts->key_attnums[i] - 1)->attname))));
	opts->key_out = palloc(sizeof(FmgrInfo) * Max(opts->nkeys, 1));
	for (int i = 0; i < opts->nkeys; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, opts->key_attnums[i] - 1);
		Oid			typoutput;
		bool		varlena;

		if (!sent[opts->key_attnums[i]])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key column \"%s\" of relation \"%s\" is not sent",
							NameStr(att->attname), RelationGetRelationName(rel)),
					 key_given ?
					 errdetail("Option \"key\" of outbox_capture() names a column that options \"exclude\" or \"include\" keep out of the event.") :
					 errdetail("The Kafka key defaults to the primary key, and options \"exclude\" or \"include\" keep this primary key column out of the event."),
					 errhint("Name key columns that are sent with option \"key\", or pass an empty key list (key=) for records without a key.")));
		getTypeOutputInfo(att->atttypid, &typoutput, &varlena);
		fmgr_info(typoutput, &opts->key_out[i]);
	}

	opts->col_attnums = palloc(sizeof(AttrNumber) * Max(desc->natts, 1));
	for (int i = 1; i <= desc->natts; i++)
		if (sent[i])
			opts->col_attnums[opts->ncols++] = i;
	opts->row_desc = CreateTemplateTupleDesc(opts->ncols);
	for (int i = 0; i < opts->ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, opts->col_attnums[i] - 1);

		TupleDescInitEntry(opts->row_desc, i + 1, NameStr(att->attname),
						   att->atttypid, att->atttypmod, 0);
	}
	opts->row_desc = BlessTupleDesc(opts->row_desc);

	opts->schema = get_namespace_name(get_rel_namespace(rootid));
	opts->table = get_rel_name(rootid);
	for (int i = 0; i < NUM_OPS; i++)
		opts->headers[i] = event_type_headers(opts->table, op_names[i]);

	/* to_jsonb() learns its argument's type from fn_expr */
	fmgr_info_cxt(F_TO_JSONB, &opts->to_jsonb, CurrentMemoryContext);
	opts->to_jsonb.fn_expr = (Node *)
		makeFuncExpr(F_TO_JSONB, JSONBOID,
					 list_make1(makeNullConst(RECORDOID, -1, InvalidOid)),
					 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
}

static CaptureOptions *
capture_options_for(Trigger *trigger, Relation rel)
{
	CaptureCacheEntry *entry;
	bool		found;
	MemoryContext old;

	if (capture_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CaptureCacheEntry);
		capture_cache = hash_create("edu_outbox capture triggers", 16, &ctl,
									HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(invalidate_capture_cache, (Datum) 0);
	}
	entry = hash_search(capture_cache, &trigger->tgoid, HASH_ENTER, &found);
	if (found && entry->valid)
		return &entry->opts;
	if (!found)
		entry->cxt = NULL;
	entry->valid = false;
	entry->relid = RelationGetRelid(rel);
	entry->rootid = InvalidOid;
	if (entry->cxt == NULL)
		entry->cxt = AllocSetContextCreate(CacheMemoryContext, "edu_outbox capture options",
										   ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(entry->cxt);

	entry->rootid = captured_table(trigger, rel);
	old = MemoryContextSwitchTo(entry->cxt);
	parse_capture_options(rel, entry->rootid, trigger->tgnargs, trigger->tgargs, &entry->opts);
	MemoryContextSwitchTo(old);
	entry->valid = true;
	return &entry->opts;
}

/* The sent columns of a row as a jsonb object. */
static Jsonb *
row_to_jsonb(CaptureOptions *opts, HeapTuple tuple, TupleDesc desc)
{
	Datum	   *values = palloc(sizeof(Datum) * Max(opts->ncols, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(opts->ncols, 1));
	HeapTuple	row;

	for (int i = 0; i < opts->ncols; i++)
		values[i] = heap_getattr(tuple, opts->col_attnums[i], desc, &nulls[i]);
	row = heap_form_tuple(opts->row_desc, values, nulls);
	return DatumGetJsonbP(FunctionCall1(&opts->to_jsonb, HeapTupleGetDatum(row)));
}

/* Key text: one column as its text value, several as a JSON array of texts. */
static bool
build_key(CaptureOptions *opts, HeapTuple tuple, TupleDesc desc, Datum *key)
{
	StringInfoData buf;

	if (opts->nkeys == 0)
		return false;
	if (opts->nkeys == 1)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, opts->key_attnums[0], desc, &isnull);

		if (isnull)
			return false;
		*key = CStringGetTextDatum(OutputFunctionCall(&opts->key_out[0], d));
		return true;
	}
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < opts->nkeys; i++)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, opts->key_attnums[i], desc, &isnull);

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		if (isnull)
			appendStringInfoString(&buf, "null");
		else
			escape_json(&buf, OutputFunctionCall(&opts->key_out[i], d));
	}
	appendStringInfoChar(&buf, ']');
	*key = PointerGetDatum(cstring_to_text_with_len(buf.data, buf.len));
	return true;
}

/* Names of sent columns whose stored value differs between old and new. */
static List *
changed_columns(CaptureOptions *opts, HeapTuple oldtup, HeapTuple newtup, TupleDesc desc)
{
	List	   *changed = NIL;

	for (int i = 0; i < opts->ncols; i++)
	{
		AttrNumber	attnum = opts->col_attnums[i];
		Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
		bool		oldnull,
					newnull;
		Datum		oldval = heap_getattr(oldtup, attnum, desc, &oldnull);
		Datum		newval = heap_getattr(newtup, attnum, desc, &newnull);

		if (oldnull != newnull ||
			(!oldnull && !datum_image_eq(oldval, newval, att->attbyval, att->attlen)))
			changed = lappend(changed, NameStr(att->attname));
	}
	return changed;
}

static void
push_string(JsonbParseState **state, JsonbIteratorToken tok, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(state, tok, &v);
}

static void
push_jsonb(JsonbParseState **state, Jsonb *jb)
{
	JsonbValue	v;

	if (jb == NULL)
	{
		v.type = jbvNull;
		pushJsonbValue(state, WJB_VALUE, &v);
		return;
	}
	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	pushJsonbValue(state, WJB_VALUE, &v);
}

static Datum
build_payload(CaptureOptions *opts, int op, Jsonb *data, Jsonb *old, List *changed)
{
	JsonbParseState *state = NULL;
	ListCell   *lc;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_string(&state, WJB_KEY, "op");
	push_string(&state, WJB_VALUE, op_names[op]);
	push_string(&state, WJB_KEY, "schema");
	push_string(&state, WJB_VALUE, opts->schema);
	push_string(&state, WJB_KEY, "table");
	push_string(&state, WJB_VALUE, opts->table);
	push_string(&state, WJB_KEY, "data");
	push_jsonb(&state, data);
	if (op != OP_INSERT)
	{
		push_string(&state, WJB_KEY, "old");
		push_jsonb(&state, old);
	}
	if (op == OP_UPDATE)
	{
		push_string(&state, WJB_KEY, "changed");
		pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
		foreach(lc, changed)
			push_string(&state, WJB_ELEM, lfirst(lc));
		pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	}
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}

Datum
outbox_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent event;
	CaptureOptions *opts;
	TupleDesc	desc;
	HeapTuple	newtup = NULL,
				oldtup = NULL;
	List	   *changed = NIL;
	Datum		key = (Datum) 0;
	bool		has_key;
	int			op;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox_capture() must be called as trigger")));
	event = trigdata->tg_event;
	if (!TRIGGER_FIRED_AFTER(event) || !TRIGGER_FIRED_FOR_ROW(event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox_capture() must be fired AFTER ... FOR EACH ROW"),
				 errdetail("Trigger \"%s\" on \"%s\" is not an AFTER row trigger.",
						   trigdata->tg_trigger->tgname,
						   RelationGetRelationName(trigdata->tg_relation)),
				 errhint("An AFTER row trigger sees only rows that were really written, in their final form.")));

	if (TRIGGER_FIRED_BY_INSERT(event))
		op = OP_INSERT;
	else if (TRIGGER_FIRED_BY_UPDATE(event))
		op = OP_UPDATE;
	else if (TRIGGER_FIRED_BY_DELETE(event))
		op = OP_DELETE;
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox_capture() captures only INSERT, UPDATE and DELETE")));

	opts = capture_options_for(trigdata->tg_trigger, trigdata->tg_relation);
	if (!opts->ops[op])
		return PointerGetDatum(NULL);

	desc = RelationGetDescr(trigdata->tg_relation);
	if (op == OP_INSERT)
		newtup = trigdata->tg_trigtuple;
	else if (op == OP_UPDATE)
	{
		oldtup = trigdata->tg_trigtuple;
		newtup = trigdata->tg_newtuple;
		changed = changed_columns(opts, oldtup, newtup, desc);
		if (changed == NIL && opts->skip_unchanged)
			return PointerGetDatum(NULL);
	}
	else
		oldtup = trigdata->tg_trigtuple;

	has_key = build_key(opts, newtup ? newtup : oldtup, desc, &key);
	outbox_write_event(opts->topic,
					   build_payload(opts, op,
									 newtup ? row_to_jsonb(opts, newtup, desc) : NULL,
									 oldtup ? row_to_jsonb(opts, oldtup, desc) : NULL,
									 changed),
					   key, !has_key, opts->headers[op], false, NULL);
	return PointerGetDatum(NULL);
}

/* The column names of a list option, as next_column_name reads them. */
List *
capture_split_columns(const char *option, const char *list)
{
	List	   *names = NIL;
	const char *pos = list;
	char	   *name;

	while ((name = next_column_name(option, &pos)) != NULL)
		names = lappend(names, name);
	return names;
}

/* A list option's value that capture_split_columns reads back as names. */
char *
capture_join_columns(List *names)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
	{
		if (buf.len > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoChar(&buf, '"');
		for (const char *c = lfirst(lc); *c; c++)
		{
			if (*c == '"')
				appendStringInfoChar(&buf, '"');
			appendStringInfoChar(&buf, *c);
		}
		appendStringInfoChar(&buf, '"');
	}
	return buf.data;
}

/* Raises the error the trigger would raise when it fires on rel, if any. */
void
capture_check_trigger(Relation rel, Trigger *trigger)
{
	CaptureOptions opts;

	parse_capture_options(rel, RelationGetRelid(rel), trigger->tgnargs, trigger->tgargs, &opts);
}

/* outbox_capture_check(tbl, topic, options): reports what the trigger would reject. */
Datum
outbox_capture_check(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ArrayType  *options = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *elems = NULL;
	bool	   *nulls = NULL;
	int			nelems = 0;
	char	  **args;
	Relation	rel;
	CaptureOptions opts;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table and topic must not be null")));
	if (options)
		deconstruct_array(options, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);
	args = palloc(sizeof(char *) * (nelems + 1));
	args[0] = text_to_cstring(PG_GETARG_TEXT_PP(1));
	for (int i = 0; i < nelems; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("outbox_capture() options must not be null")));
		args[i + 1] = TextDatumGetCString(elems[i]);
	}
	rel = relation_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errdetail("outbox_capture() captures writes to tables only.")));
	parse_capture_options(rel, relid, nelems + 1, args, &opts);
	relation_close(rel, AccessShareLock);
	PG_RETURN_VOID();
}
