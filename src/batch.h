/*
 * batch.h: which outbox rows the relay sends next, and how far it got.
 *
 * A batch is every row whose writing transaction is visible in the batch's
 * snapshot but was not visible in the snapshot of the previous batch
 * (PgQ's method). Nothing is skipped however transactions interleave, and a
 * long-running transaction delays only itself. Inside a batch, transactions
 * go in commit order (commit timestamps when track_commit_timestamp is on,
 * else first id), and rows of one transaction by id.
 *
 * All functions run inside a transaction with SPI connected.
 */
#ifndef EDU_OUTBOX_BATCH_H
#define EDU_OUTBOX_BATCH_H

#include "postgres.h"

typedef struct OutboxTxn
{
	uint64		xid;			/* FullTransactionId of the writer */
	int32		nrows;
} OutboxTxn;

typedef struct OutboxBatch
{
	bool		loaded;			/* state read from relay_state */
	bool		open;			/* a batch is being delivered */
	bool		dirty;			/* position changed since last persisted */
	TimestampTz persisted_at;
	char	   *delivered_snapshot; /* everything visible here is delivered */
	char	   *batch_snapshot; /* end of the open batch */
	OutboxTxn  *txns;			/* the open batch's transactions, in order */
	int			ntxns;
	int			pos_index;		/* txns before this one are delivered */
	int			pos_done;		/* rows of txns[pos_index] delivered */
	int64		pos_last_id;	/* id of the last of those */
	MemoryContext cxt;			/* holds the fields above */
} OutboxBatch;

/* One outbox row as the relay sends it. */
typedef struct OutboxEvent
{
	int64		id;
	int			txn_index;		/* index into OutboxBatch.txns */
	char	   *topic;
	char	   *key;			/* NULL: no key */
	int			key_len;
	char	   *payload;
	int			payload_len;
	char	   *headers;		/* JSON text or NULL */
	int64		timestamp_ms;
} OutboxEvent;

extern void outbox_batch_reset(OutboxBatch *batch);
extern void outbox_batch_load(OutboxBatch *batch);
extern void outbox_batch_persist(OutboxBatch *batch);
/* Opens a new batch if none is open; false if there is nothing to send. */
extern bool outbox_batch_begin(OutboxBatch *batch);
/* Reads up to limit rows from the current position into cxt. */
extern int	outbox_batch_fetch(OutboxBatch *batch, int limit, MemoryContext cxt,
							   OutboxEvent **events);
/* Records that the first ndelivered of events were acknowledged. */
extern void outbox_batch_advance(OutboxBatch *batch, const OutboxEvent *events,
								 int ndelivered);

#endif
