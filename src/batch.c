/*
 * batch.c: batch selection, fetching and progress in SQL (see batch.h).
 */
#include "postgres.h"

#include "access/commit_ts.h"
#include "access/detoast.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "outbox_table.h"
#include "relay_control.h"
#include "../relay/relay.h"

/* Transactions of a batch, in commit order. */
#define TXNS_SQL(order) \
	"SELECT xid::text, count(*)::int4 FROM " OUTBOX_SCHEMA ".outbox " \
	"WHERE xid >= pg_snapshot_xmin($1::pg_snapshot) " \
	"  AND xid < pg_snapshot_xmax($2::pg_snapshot) " \
	"  AND pg_visible_in_snapshot(xid, $2::pg_snapshot) " \
	"  AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot) " \
	"GROUP BY xid ORDER BY " order

static const char *const txns_by_commit_ts_sql =
TXNS_SQL("pg_xact_commit_timestamp(xid::xid) NULLS FIRST, min(id)");
static const char *const txns_by_first_id_sql = TXNS_SQL("min(id)");

/*
 * Opening a batch in one statement: the paused flag, a new snapshot, and the
 * transactions visible in it but not in $1 (delivered_snapshot), in commit
 * order. Paused, nothing is listed. OFFSET 0 keeps the snapshot computed
 * once rather than inlined into the per-row tests. Always at least one row;
 * with no transactions, its xid is NULL.
 */
#define BEGIN_SQL(order) \
	"SELECT s.paused, s.snap::text, t.xid::text, t.n " \
	"FROM (SELECT paused, pg_current_snapshot() AS snap FROM " OUTBOX_SCHEMA ".relay_state " \
	"      OFFSET 0) s " \
	"LEFT JOIN LATERAL (" \
	"  SELECT xid, count(*)::int4 AS n, min(id) AS first_id FROM " OUTBOX_SCHEMA ".outbox " \
	"  WHERE NOT s.paused " \
	"    AND xid >= pg_snapshot_xmin($1::pg_snapshot) " \
	"    AND xid < pg_snapshot_xmax(s.snap) " \
	"    AND pg_visible_in_snapshot(xid, s.snap) " \
	"    AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot) " \
	"  GROUP BY xid) t ON true " \
	"ORDER BY " order

static const char *const begin_by_commit_ts_sql =
BEGIN_SQL("pg_xact_commit_timestamp(t.xid::xid) NULLS FIRST, t.first_id");
static const char *const begin_by_first_id_sql = BEGIN_SQL("t.first_id");

/*
 * Rows of the given transactions (by ordinality), skipping the first one's
 * delivered rows, at most $3 per transaction. For each transaction in turn
 * (a nested loop over the array) the rows come from the (xid, id) index in id
 * order: nothing is sorted, so reading a chunk costs the same wherever it is
 * in a huge transaction. The reader checks that order.
 */
static const char *const fetch_sql =
"SELECT o.id, t.ord::int4, o.topic, o.key, o.payload::text, o.headers::text, o.ts "
"FROM unnest($1::xid8[]) WITH ORDINALITY AS t(xid, ord) "
"CROSS JOIN LATERAL ("
"  SELECT id, topic, key, payload, headers, "
"         (extract(epoch FROM created_at) * 1000)::int8 AS ts "
"  FROM " OUTBOX_SCHEMA ".outbox "
"  WHERE xid = t.xid AND id > CASE WHEN t.ord = 1 THEN $2 ELSE 0 END "
"  ORDER BY id LIMIT $3) o";

static const char *const load_sql =
"SELECT delivered_snapshot::text, batch_snapshot::text, batch_pos_index, "
"       batch_pos_xid::text, batch_pos_done, batch_pos_last_id, position_seq, state_id::text "
"FROM " OUTBOX_SCHEMA ".relay_state";

static const char *const persist_sql =
"UPDATE " OUTBOX_SCHEMA ".relay_state SET delivered_snapshot = $1::pg_snapshot, "
"  batch_snapshot = $2::pg_snapshot, batch_pos_index = $3, batch_pos_xid = $4::xid8, "
"  batch_pos_done = $5, batch_pos_last_id = $6, position_seq = $7, updated_at = now()";

static SPIPlanPtr
plan_once(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/*
 * A text column as a NUL-terminated copy in cxt, or, with cxt NULL, in
 * malloc'ed memory (a payload that librdkafka takes over).
 */
static char *
get_text(HeapTuple tup, TupleDesc desc, int col, MemoryContext cxt, int *len)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	text	   *t;
	char	   *s;
	int			n;

	if (isnull)
	{
		if (len)
			*len = 0;
		return NULL;
	}
	t = DatumGetTextPP(d);
	n = VARSIZE_ANY_EXHDR(t);
	s = cxt ? MemoryContextAlloc(cxt, n + 1) : malloc(n + 1);
	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %d for an event payload.", n + 1)));
	memcpy(s, VARDATA_ANY(t), n);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}

static int64
get_int(HeapTuple tup, TupleDesc desc, int col, bool is64)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		return 0;
	return is64 ? DatumGetInt64(d) : DatumGetInt32(d);
}

/* delivered_snapshot outlives batches, so it lives in TopMemoryContext. */
static void
set_delivered(OutboxBatch *batch, const char *snapshot)
{
	char	   *old = batch->delivered_snapshot;

	batch->delivered_snapshot = MemoryContextStrdup(TopMemoryContext, snapshot);
	if (old)
		pfree(old);
}

/* Back to the start of the open batch (or of none). */
static void
rewind_position(OutboxBatch *batch)
{
	batch->pos_index = 0;
	batch->pos_done = 0;
	batch->pos_last_id = 0;
}

/* No batch open: the transaction list is dropped, the position rewound. */
static void
forget_open_batch(OutboxBatch *batch)
{
	batch->open = false;
	batch->batch_snapshot = NULL;
	batch->txn_xids = NULL;
	batch->txn_rows = NULL;
	batch->ntxns = 0;
	rewind_position(batch);
}

void
outbox_batch_reset(OutboxBatch *batch)
{
	if (batch->cxt == NULL)
		batch->cxt = AllocSetContextCreate(TopMemoryContext, "edu_outbox batch",
										   ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(batch->cxt);
	batch->loaded = false;
	batch->dirty = false;
	batch->persisted_at = 0;
	if (batch->delivered_snapshot)
		pfree(batch->delivered_snapshot);
	batch->delivered_snapshot = NULL;
	forget_open_batch(batch);
}

/*
 * Stores the transactions of the batch from SPI_tuptable: xid as text in
 * column col, row count in col + 1; a row with a NULL xid (the outer side of
 * an empty listing) is not one.
 */
static void
store_transactions(OutboxBatch *batch, int col)
{
	int			n = 0;

	batch->txn_xids = MemoryContextAlloc(batch->cxt, sizeof(uint64) * Max(SPI_processed, 1));
	batch->txn_rows = MemoryContextAlloc(batch->cxt, sizeof(int32) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		char	   *xid = get_text(tup, SPI_tuptable->tupdesc, col, CurrentMemoryContext, NULL);

		if (xid == NULL)
			continue;
		batch->txn_xids[n] = strtou64(xid, NULL, 10);
		batch->txn_rows[n] = (int32) get_int(tup, SPI_tuptable->tupdesc, col + 1, false);
		n++;
	}
	batch->ntxns = n;
	SPI_freetuptable(SPI_tuptable);
}

/* Lists the transactions visible in batch_snapshot but not in delivered_snapshot. */
static void
list_transactions(OutboxBatch *batch)
{
	static SPIPlanPtr by_ts = NULL,
				by_id = NULL;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	SPIPlanPtr	plan;
	int			ret;

	values[0] = CStringGetTextDatum(batch->delivered_snapshot);
	values[1] = CStringGetTextDatum(batch->batch_snapshot);
	plan = track_commit_timestamp ?
		plan_once(&by_ts, txns_by_commit_ts_sql, 2, types) :
		plan_once(&by_id, txns_by_first_id_sql, 2, types);
	ret = SPI_execute_plan(plan, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "edu_outbox: listing batch transactions failed: %s",
			 SPI_result_code_string(ret));
	store_transactions(batch, 1);
}

/*
 * Rebuilds the open batch of a position read back (from relay_state or
 * Kafka): its transaction order is deterministic. pos_xid is the
 * transaction the position points into, 0 if none.
 */
static void
reopen_batch(OutboxBatch *batch, uint64 pos_xid)
{
	if (batch->batch_snapshot == NULL)
	{
		rewind_position(batch);
		return;
	}
	batch->open = true;
	list_transactions(batch);
	if (batch->pos_index == 0 && batch->pos_done == 0)
		return;
	if (pos_xid == 0 || batch->pos_index >= batch->ntxns ||
		batch->txn_xids[batch->pos_index] != pos_xid)
	{
		/* e.g. track_commit_timestamp changed: resending beats skipping */
		ereport(WARNING,
				(errmsg("edu_outbox relay position does not match its batch; resending the batch from its start"),
				 errdetail("Saved position %d (transaction " UINT64_FORMAT ") in a batch of %d transactions.",
						   batch->pos_index, pos_xid, batch->ntxns)));
		rewind_position(batch);
		batch->dirty = true;
	}
}

/*
 * Whether relay_state has the newest column this library reads (0.3): an
 * extension created at an older version and not yet updated would fail
 * every cycle.
 */
bool
outbox_batch_schema_current(void)
{
	Oid			nsp = get_namespace_oid(OUTBOX_SCHEMA, true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid("relay_state", nsp) : InvalidOid;

	return OidIsValid(rel) && get_attnum(rel, "state_id") != InvalidAttrNumber;
}

void
outbox_batch_load(OutboxBatch *batch)
{
	static SPIPlanPtr plan = NULL;
	HeapTuple	tup;
	TupleDesc	desc;
	char	   *pos_xid;
	int			ret;

	outbox_batch_reset(batch);
	ret = SPI_execute_plan(plan_once(&plan, load_sql, 0, NULL), NULL, NULL, true, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("edu_outbox.relay_state must hold exactly one row"),
				 errhint("Recreate the extension, or restore the row from a backup.")));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	set_delivered(batch, get_text(tup, desc, 1, CurrentMemoryContext, NULL));
	batch->batch_snapshot = get_text(tup, desc, 2, batch->cxt, NULL);
	batch->pos_index = (int) get_int(tup, desc, 3, false);
	pos_xid = get_text(tup, desc, 4, batch->cxt, NULL);
	batch->pos_done = (int) get_int(tup, desc, 5, false);
	batch->pos_last_id = get_int(tup, desc, 6, true);
	batch->position_seq = get_int(tup, desc, 7, true);
	strlcpy(batch->state_id, get_text(tup, desc, 8, CurrentMemoryContext, NULL),
			sizeof(batch->state_id));
	batch->loaded = true;
	batch->persisted_at = GetCurrentTimestamp();
	reopen_batch(batch, pos_xid ? strtou64(pos_xid, NULL, 10) : 0);
}

void
outbox_batch_adopt(OutboxBatch *batch, const RelayPosition *pos)
{
	MemoryContextReset(batch->cxt);
	forget_open_batch(batch);
	set_delivered(batch, pos->delivered_snapshot);
	batch->batch_snapshot = pos->batch_snapshot ?
		MemoryContextStrdup(batch->cxt, pos->batch_snapshot) : NULL;
	batch->pos_index = pos->pos_index;
	batch->pos_done = pos->pos_done;
	batch->pos_last_id = pos->pos_last_id;
	batch->position_seq = pos->seq;
	batch->dirty = true;
	reopen_batch(batch, pos->pos_xid);
}

void
outbox_batch_describe(const OutboxBatch *batch, int pos_index, int pos_done,
					  int64 pos_last_id, int64 seq, RelayPosition *out)
{
	memset(out, 0, sizeof(*out));
	out->seq = seq;
	strlcpy(out->state_id, batch->state_id, sizeof(out->state_id));
	if (!batch->open || pos_index >= batch->ntxns)
	{
		/* the batch is finished: as outbox_batch_move would leave it */
		out->delivered_snapshot = batch->open ? batch->batch_snapshot : batch->delivered_snapshot;
		return;
	}
	out->delivered_snapshot = batch->delivered_snapshot;
	out->batch_snapshot = batch->batch_snapshot;
	out->pos_index = pos_index;
	out->pos_xid = batch->txn_xids[pos_index];
	out->pos_done = pos_done;
	out->pos_last_id = pos_last_id;
}

void
outbox_batch_persist(OutboxBatch *batch)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[7] = {TEXTOID, TEXTOID, INT4OID, TEXTOID, INT4OID, INT8OID, INT8OID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			ret;

	values[0] = CStringGetTextDatum(batch->delivered_snapshot);
	if (batch->open)
		values[1] = CStringGetTextDatum(batch->batch_snapshot);
	else
		nulls[1] = 'n';
	values[2] = Int32GetDatum(batch->open ? batch->pos_index : 0);
	if (batch->open && batch->pos_index < batch->ntxns)
		values[3] = CStringGetTextDatum(psprintf(UINT64_FORMAT, batch->txn_xids[batch->pos_index]));
	else
		nulls[3] = 'n';
	values[4] = Int32GetDatum(batch->open ? batch->pos_done : 0);
	values[5] = Int64GetDatum(batch->open ? batch->pos_last_id : 0);
	values[6] = Int64GetDatum(batch->position_seq);

	ret = SPI_execute_plan(plan_once(&plan, persist_sql, 7, types), values, nulls, false, 0);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("edu_outbox.relay_state must hold exactly one row")));
	batch->dirty = false;
	batch->persisted_at = GetCurrentTimestamp();
}

bool
outbox_batch_begin(OutboxBatch *batch, bool *paused)
{
	static SPIPlanPtr by_ts = NULL,
				by_id = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	SPIPlanPtr	plan;
	bool		isnull;
	int			ret;
	char	   *snap;

	if (batch->open)
	{
		*paused = outbox_relay_paused();
		return !*paused && batch->pos_index < batch->ntxns;
	}

	/* the previous batch's transaction list is no longer needed */
	MemoryContextReset(batch->cxt);
	values[0] = CStringGetTextDatum(batch->delivered_snapshot);
	plan = track_commit_timestamp ?
		plan_once(&by_ts, begin_by_commit_ts_sql, 1, types) :
		plan_once(&by_id, begin_by_first_id_sql, 1, types);
	ret = SPI_execute_plan(plan, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT || SPI_processed < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("edu_outbox.relay_state must hold exactly one row")));
	*paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (*paused)
	{
		/* nothing was listed: the delivered snapshot must not move */
		SPI_freetuptable(SPI_tuptable);
		forget_open_batch(batch);
		return false;
	}
	snap = get_text(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, batch->cxt, NULL);
	store_transactions(batch, 3);

	batch->batch_snapshot = snap;
	rewind_position(batch);
	if (batch->ntxns > 0)
	{
		batch->open = true;
		return true;
	}

	/*
	 * Nothing new: move the lower bound forward in memory so later scans
	 * stay short, and persist it now and then.
	 */
	set_delivered(batch, snap);
	batch->batch_snapshot = NULL;
	if (TimestampDifferenceExceeds(batch->persisted_at, GetCurrentTimestamp(), 10000))
		batch->dirty = true;
	return false;
}

bool
outbox_batch_persist_due(const OutboxBatch *batch)
{
	return batch->dirty &&
		TimestampDifferenceExceeds(batch->persisted_at, GetCurrentTimestamp(),
								   OUTBOX_PERSIST_INTERVAL_MS);
}

long
outbox_batch_persist_wait_ms(const OutboxBatch *batch)
{
	long		secs;
	int			usecs;
	long		elapsed;

	if (!batch->dirty)
		return -1;
	TimestampDifference(batch->persisted_at, GetCurrentTimestamp(), &secs, &usecs);
	elapsed = secs * 1000 + usecs / 1000;
	return elapsed >= OUTBOX_PERSIST_INTERVAL_MS ? 0 : OUTBOX_PERSIST_INTERVAL_MS - elapsed;
}

/* Bytes of a text column, without detoasting it (a key may still be toasted). */
static int64
text_size(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : (int64) toast_raw_datum_size(d) - VARHDRSZ;
}

/*
 * Corrects the row counts of listed transactions that the reader has passed
 * completely (ord < complete_upto) and that had fewer rows than the batch
 * counted: those rows are gone. Returns how many.
 */
static int64
skip_vanished(OutboxBatch *batch, const int *found, int nlisted, int complete_upto)
{
	StringInfoData detail;
	int64		gone = 0;
	int			ntxns_gone = 0;

	initStringInfo(&detail);
	for (int k = 0; k < nlisted && k < complete_upto; k++)
	{
		int			t = batch->pos_index + k;
		int			before = k == 0 ? batch->pos_done : 0;
		int			missing = batch->txn_rows[t] - before - found[k];

		if (missing <= 0)
			continue;
		if (ntxns_gone < 5)
			appendStringInfo(&detail, "%s%d of the %d events of transaction " UINT64_FORMAT "%s",
							 ntxns_gone > 0 ? "; " : "", missing, batch->txn_rows[t],
							 batch->txn_xids[t],
							 k == 0 && batch->pos_last_id > 0 ?
							 psprintf(" after id " INT64_FORMAT, batch->pos_last_id) : "");
		gone += missing;
		ntxns_gone++;
		batch->txn_rows[t] = before + found[k];
	}
	if (gone > 0)
	{
		if (ntxns_gone > 5)
			appendStringInfo(&detail, "; and %d more transactions", ntxns_gone - 5);
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("edu_outbox relay skipped " INT64_FORMAT " undelivered events that vanished from the outbox",
						gone),
				 errdetail("Missing: %s.", detail.data),
				 errhint("Rows of edu_outbox.outbox were removed by hand (TRUNCATE or DELETE) before Kafka had them; delivery goes on after them.")));
		batch->dirty = true;
	}
	pfree(detail.data);
	return gone;
}

/* How many rows to fetch next: what still fits by the largest row seen so far. */
static int
piece_size(int64 room_bytes, int64 largest, int room_events)
{
	int64		n = largest > 0 ? room_bytes / largest : 1;

	return (int) Max(1, Min(Min(n, 1000), room_events));
}

int
outbox_batch_fetch(OutboxBatch *batch, int max_events, int64 max_bytes,
				   MemoryContext cxt, OutboxEvent **events, int64 *skipped)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {TEXTOID, INT8OID, INT4OID};
	Datum		values[3];
	StringInfoData xids;
	int64		want = 0;
	int			nlisted = 0;
	int		   *found;
	Portal		portal;
	OutboxEvent *ev;
	int			n = 0;
	int			cap;
	int64		bytes = 0;
	int64		largest = 0;
	int			last_ord = 0;
	int64		last_id = 0;
	bool		exhausted = false;
	bool		full = false;

	*skipped = 0;
	*events = NULL;
	if (!batch->open || batch->pos_index >= batch->ntxns)
		return 0;

	/* Enough whole transactions to fill the chunk. */
	initStringInfo(&xids);
	appendStringInfoChar(&xids, '{');
	for (int i = batch->pos_index; i < batch->ntxns && want < max_events; i++)
	{
		if (i > batch->pos_index)
			appendStringInfoChar(&xids, ',');
		appendStringInfo(&xids, UINT64_FORMAT, batch->txn_xids[i]);
		want += batch->txn_rows[i] - (i == batch->pos_index ? batch->pos_done : 0);
		nlisted++;
	}
	appendStringInfoChar(&xids, '}');
	found = palloc0(sizeof(int) * nlisted);
	cap = (int) Min(max_events, Max(want, 1));
	ev = MemoryContextAllocZero(cxt, sizeof(OutboxEvent) * cap);

	values[0] = CStringGetTextDatum(xids.data);
	values[1] = Int64GetDatum(batch->pos_last_id);
	values[2] = Int32GetDatum(max_events);
	portal = SPI_cursor_open(NULL, plan_once(&plan, fetch_sql, 3, types), values, NULL, true);

	/* Fetch in pieces that fit what is left, so no more than a chunk is in memory. */
	while (!full && !exhausted)
	{
		int			piece = piece_size(max_bytes - bytes, largest, cap - n);
		TupleDesc	desc;
		uint64		r;

		SPI_cursor_fetch(portal, true, piece);
		desc = SPI_tuptable->tupdesc;
		for (r = 0; r < SPI_processed && !full; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			int64		id = get_int(tup, desc, 1, true);
			int			ord = (int) get_int(tup, desc, 2, false);
			int64		size = text_size(tup, desc, 4) + text_size(tup, desc, 5) +
				text_size(tup, desc, 6);
			OutboxEvent *e;

			/* the nested loop yields transactions in turn and each one's rows by id */
			if (ord < last_ord || (ord == last_ord && id <= last_id) || ord > nlisted)
				elog(ERROR, "edu_outbox: outbox rows came out of order (transaction %d id " INT64_FORMAT " after transaction %d id " INT64_FORMAT ")",
					 ord, id, last_ord, last_id);
			last_ord = ord;
			last_id = id;
			largest = Max(largest, size);
			if (n > 0 && bytes + size > max_bytes)
			{
				full = true;	/* this row is read again next time */
				break;
			}
			e = &ev[n++];
			found[ord - 1]++;
			bytes += size;
			e->id = id;
			e->txn_index = batch->pos_index + ord - 1;
			e->topic = get_text(tup, desc, 3, cxt, NULL);
			e->key = get_text(tup, desc, 4, cxt, &e->key_len);
			e->payload = get_text(tup, desc, 5, NULL, &e->payload_len);
			e->headers = get_text(tup, desc, 6, cxt, NULL);
			e->timestamp_ms = get_int(tup, desc, 7, true);
			if (n == cap || bytes >= max_bytes)
				full = true;
		}
		/* a short piece, all of it taken: no rows are left */
		exhausted = SPI_processed < (uint64) piece && r == SPI_processed;
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);

	/*
	 * Transactions the reader went past are complete: all of them if the
	 * rows ran out, else those before the last one seen.
	 */
	*skipped = skip_vanished(batch, found, nlisted, exhausted ? nlisted : last_ord - 1);
	pfree(found);
	*events = ev;
	return n;
}

void
outbox_batch_move(OutboxBatch *batch, int pos_index, int pos_done, int64 pos_last_id)
{
	if (pos_index != batch->pos_index || pos_done != batch->pos_done ||
		pos_last_id != batch->pos_last_id)
		batch->dirty = true;
	batch->pos_index = pos_index;
	batch->pos_done = pos_done;
	batch->pos_last_id = pos_last_id;

	if (batch->open && batch->pos_index >= batch->ntxns)
	{
		set_delivered(batch, batch->batch_snapshot);
		forget_open_batch(batch);
		batch->dirty = true;
	}
}
