/*
 * dead_letter.c: writing dead letters and knowing which topic/key pairs are
 * held back (see dead_letter.h).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dead_letter.h"
#include "outbox_table.h"
#include "shared_state.h"

typedef struct DeadLetterHead
{
	char	   *topic;
	char	   *key;
	int64		id;
} DeadLetterHead;

typedef struct DeadLetterAction
{
	int64		id;
	uint64		xid;
	char	   *error;
	int64		parked_behind;
} DeadLetterAction;

static MemoryContext heads_cxt = NULL;
static MemoryContext actions_cxt = NULL;
static List *heads = NIL;
static List *actions = NIL;
static bool heads_known = false;	/* heads reflect the table */
static TimestampTz heads_read_at = 0;

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
add_head(const char *topic, const char *key, int64 id)
{
	MemoryContext old = MemoryContextSwitchTo(heads_cxt);
	DeadLetterHead *h = palloc(sizeof(DeadLetterHead));

	h->topic = pstrdup(topic);
	h->key = pstrdup(key);
	h->id = id;
	heads = lappend(heads, h);
	MemoryContextSwitchTo(old);
}

void
outbox_dead_letters_refresh(void)
{
	int			ret;

	/*
	 * Only the relay adds dead letters; others only resolve them. So while
	 * there are none, a look every few seconds is enough.
	 */
	if (heads_known && heads == NIL &&
		!TimestampDifferenceExceeds(heads_read_at, GetCurrentTimestamp(), 5000))
		return;
	heads_known = true;
	heads_read_at = GetCurrentTimestamp();
	ensure_contexts();
	MemoryContextReset(heads_cxt);
	heads = NIL;
	/* not read-only: it must see the dead letters flushed earlier in this transaction */
	ret = SPI_execute("SELECT topic, key, id FROM " OUTBOX_SCHEMA ".dead_letter "
					  "WHERE parked_behind IS NULL AND key IS NOT NULL", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "edu_outbox: reading dead letters failed: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;

		add_head(SPI_getvalue(tup, SPI_tuptable->tupdesc, 1),
				 SPI_getvalue(tup, SPI_tuptable->tupdesc, 2),
				 DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
}

int64
outbox_dead_letter_head_for(const char *topic, const char *key)
{
	ListCell   *lc;

	/* without a key there is no order to keep */
	if (key == NULL)
		return 0;
	foreach(lc, heads)
	{
		DeadLetterHead *h = lfirst(lc);

		if (strcmp(h->key, key) == 0 && strcmp(h->topic, topic) == 0)
			return h->id;
	}
	return 0;
}

void
outbox_dead_letter_note(int64 id, uint64 xid, const char *topic, const char *key,
						const char *error, int64 parked_behind)
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
		add_head(topic, key, id);
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
	heads_known = false;
	return n;
}

void
outbox_dead_letters_forget(void)
{
	ensure_contexts();
	MemoryContextReset(actions_cxt);
	MemoryContextReset(heads_cxt);
	actions = NIL;
	heads = NIL;
	heads_known = false;
}
