/*
 * dead_letter.c: writing dead letters and knowing which topic/key pairs are
 * held back (see dead_letter.h).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dead_letter.h"
#include "outbox_table.h"
#include "shared_state.h"

typedef struct DeadLetterAction
{
	int64		id;
	uint64		xid;
	char	   *error;
	int64		parked_behind;
} DeadLetterAction;

static MemoryContext heads_cxt = NULL;
static MemoryContext actions_cxt = NULL;
static DecideHead *heads = NULL;	/* in heads_cxt */
static int	nheads = 0;
static int	heads_cap = 0;
static bool heads_loaded = false;	/* read from the table since the last forget */
static List *actions = NIL;

static void
ensure_contexts(void)
{
	if (heads_cxt == NULL)
	{
		heads_cxt = AllocSetContextCreate(TopMemoryContext, "edu_outbox dead letter heads",
										  ALLOCSET_SMALL_SIZES);
		actions_cxt = AllocSetContextCreate(TopMemoryContext, "edu_outbox dead letter queue",
											ALLOCSET_SMALL_SIZES);
	}
}

static void
add_head(const char *topic, const char *key, size_t key_len, int64 id)
{
	MemoryContext old = MemoryContextSwitchTo(heads_cxt);
	char	   *k = palloc(key_len + 1);

	if (nheads == heads_cap)
	{
		heads_cap = Max(16, heads_cap * 2);
		heads = heads == NULL ? palloc(sizeof(DecideHead) * heads_cap) :
			repalloc(heads, sizeof(DecideHead) * heads_cap);
	}
	memcpy(k, key, key_len);
	k[key_len] = '\0';
	heads[nheads].id = id;
	heads[nheads].topic = pstrdup(topic);
	heads[nheads].key = k;
	heads[nheads].key_len = key_len;
	nheads++;
	MemoryContextSwitchTo(old);
}

/* Reads every head once (keys included). */
static void
load_heads(void)
{
	int			ret;

	MemoryContextReset(heads_cxt);
	heads = NULL;
	nheads = heads_cap = 0;
	/* not read-only: it must see the dead letters flushed earlier in this transaction */
	ret = SPI_execute("SELECT topic, key, id FROM " OUTBOX_SCHEMA ".dead_letter "
					  "WHERE parked_behind IS NULL AND key IS NOT NULL", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "edu_outbox: reading dead letters failed: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		text	   *key = DatumGetTextPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));

		add_head(SPI_getvalue(tup, SPI_tuptable->tupdesc, 1),
				 VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
				 DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
	heads_loaded = true;
}

/* Drops the heads that were resolved meanwhile; looks them up by id only. */
static void
drop_resolved_heads(void)
{
	static SPIPlanPtr plan = NULL;
	Oid			type = INT8ARRAYOID;
	Datum	   *ids;
	Datum		arg;
	int			ret;

	if (plan == NULL)
	{
		/* the positions (1-based) of the heads that still exist, in order */
		plan = SPI_prepare("SELECT u.i::int4 FROM unnest($1) WITH ORDINALITY AS u(id, i) "
						   "WHERE EXISTS (SELECT 1 FROM " OUTBOX_SCHEMA ".dead_letter d "
						   "              WHERE d.id = u.id) ORDER BY u.i",
						   1, &type);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	ids = palloc(sizeof(Datum) * nheads);
	for (int i = 0; i < nheads; i++)
		ids[i] = Int64GetDatum(heads[i].id);
	arg = PointerGetDatum(construct_array(ids, nheads, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
										  TYPALIGN_DOUBLE));
	ret = SPI_execute_plan(plan, &arg, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "edu_outbox: checking dead letters failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == (uint64) nheads)
	{
		SPI_freetuptable(SPI_tuptable);
		return;
	}
	/* keep the survivors in a fresh context, so resolved keys do not pile up */
	{
		MemoryContext old_cxt = heads_cxt;
		DecideHead *old_heads = heads;

		heads_cxt = AllocSetContextCreate(TopMemoryContext, "edu_outbox dead letter heads",
										  ALLOCSET_SMALL_SIZES);
		heads = NULL;
		nheads = heads_cap = 0;
		for (uint64 j = 0; j < SPI_processed; j++)
		{
			bool		isnull;
			const DecideHead *h = &old_heads[DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[j],
																	 SPI_tuptable->tupdesc,
																	 1, &isnull)) - 1];

			add_head(h->topic, h->key, h->key_len, h->id);
		}
		MemoryContextDelete(old_cxt);
	}
	SPI_freetuptable(SPI_tuptable);
}

void
outbox_dead_letters_refresh(void)
{
	ensure_contexts();
	if (!heads_loaded)
		load_heads();
	else if (nheads > 0)
		drop_resolved_heads();
}

const DecideHead *
outbox_dead_letter_heads(int *n)
{
	*n = nheads;
	return heads;
}

void
outbox_dead_letter_note(int64 id, uint64 xid, const char *topic, const char *key,
						size_t key_len, const char *error, int64 parked_behind)
{
	MemoryContext old;
	DeadLetterAction *a;

	ensure_contexts();
	old = MemoryContextSwitchTo(actions_cxt);
	a = palloc(sizeof(DeadLetterAction));
	a->id = id;
	a->xid = xid;
	a->error = pstrdup(error);
	a->parked_behind = parked_behind;
	actions = lappend(actions, a);
	MemoryContextSwitchTo(old);
	if (parked_behind == 0 && key != NULL)
		add_head(topic, key, key_len, id);
}

int
outbox_dead_letters_flush(void)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, INT8OID};
	ListCell   *lc;
	int			n = 0;

	if (actions == NIL)
		return 0;
	if (plan == NULL)
	{
		/* (xid, id) finds the row through the index; the row is still there, undelivered */
		plan = SPI_prepare("INSERT INTO " OUTBOX_SCHEMA ".dead_letter "
						   "(id, topic, key, payload, headers, created_at, error, parked_behind) "
						   "SELECT id, topic, key, payload, headers, created_at, $3, $4 "
						   "FROM " OUTBOX_SCHEMA ".outbox WHERE xid = $2::xid8 AND id = $1 "
						   "ON CONFLICT (id) DO NOTHING", 4, types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	foreach(lc, actions)
	{
		DeadLetterAction *a = lfirst(lc);
		Datum		values[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};
		int			ret;

		values[0] = Int64GetDatum(a->id);
		values[1] = CStringGetTextDatum(psprintf(UINT64_FORMAT, a->xid));
		values[2] = CStringGetTextDatum(a->error);
		values[3] = Int64GetDatum(a->parked_behind);
		if (a->parked_behind == 0)
			nulls[3] = 'n';
		ret = SPI_execute_plan(plan, values, nulls, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "edu_outbox: writing a dead letter failed: %s", SPI_result_code_string(ret));
		n++;
	}
	outbox_status_dead_lettered(n);
	MemoryContextReset(actions_cxt);
	actions = NIL;
	return n;
}

void
outbox_dead_letters_lookup(const int64 *ids, int n, bool *settled)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8ARRAYOID};
	Datum	   *elems;
	Datum		values[1];
	int			ret;

	memset(settled, 0, sizeof(bool) * n);
	if (n == 0)
		return;
	if (plan == NULL)
	{
		plan = SPI_prepare("SELECT id FROM " OUTBOX_SCHEMA ".dead_letter WHERE id = ANY ($1)",
						   1, types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	elems = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	values[0] = PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	/* not read-only: it must see dead letters written earlier in this transaction */
	ret = SPI_execute_plan(plan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "edu_outbox: reading dead letters failed: %s", SPI_result_code_string(ret));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
													 SPI_tuptable->tupdesc, 1, &isnull));

		/* dead letters are rare: a scan per row found is cheap */
		for (int i = 0; i < n; i++)
			if (ids[i] == id)
				settled[i] = true;
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(elems);
}

void
outbox_dead_letters_forget(void)
{
	ensure_contexts();
	MemoryContextReset(actions_cxt);
	MemoryContextReset(heads_cxt);
	actions = NIL;
	heads = NULL;
	nheads = heads_cap = 0;
	heads_loaded = false;
}
