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

typedef struct OutboxBatch
{
	bool		loaded;			/* state read from relay_state */
	bool		open;			/* a batch is being delivered */
	bool		dirty;			/* position changed since last persisted */
	TimestampTz persisted_at;
	char	   *delivered_snapshot; /* everything visible here is delivered */
	char	   *batch_snapshot; /* end of the open batch */
	uint64	   *txn_xids;		/* the open batch's transactions (FullTransactionId), in order */
	int32	   *txn_rows;		/* their row counts */
	int			ntxns;
	int			pos_index;		/* txns before this one are delivered */
	int			pos_done;		/* rows of transaction pos_index delivered */
	int64		pos_last_id;	/* id of the last of those */
	int64		position_seq;	/* positions committed to Kafka (exactly_once) */
	char		state_id[37];	/* relay_state's uuid, names its positions in Kafka */
	MemoryContext cxt;			/* holds the fields above */
} OutboxBatch;

/*
 * One outbox row as the relay sends it. payload is malloc'ed so that
 * librdkafka can take it over without a copy (see RelayRecord); the other
 * strings live in the memory context the reader was given.
 */
typedef struct OutboxEvent
{
	int64		id;
	int			txn_index;		/* index into OutboxBatch.txn_xids */
	char	   *topic;
	char	   *key;			/* NULL: no key */
	int			key_len;
	char	   *payload;
	int			payload_len;
	char	   *headers;		/* JSON text or NULL */
	int64		timestamp_ms;
	bool		settled;		/* already a dead letter (exactly_once retry) */
} OutboxEvent;

extern void outbox_batch_reset(OutboxBatch *batch);
extern bool outbox_batch_schema_current(void);
extern void outbox_batch_load(OutboxBatch *batch);
extern void outbox_batch_persist(OutboxBatch *batch);

/*
 * The position is written at most this often while it moves: a crash loses
 * at most this much progress, which is sent again (at least once), and it is
 * never ahead of what Kafka acknowledged, since it only moves on acks.
 */
#define OUTBOX_PERSIST_INTERVAL_MS 100
/* Whether the position moved and was last written OUTBOX_PERSIST_INTERVAL_MS ago. */
extern bool outbox_batch_persist_due(const OutboxBatch *batch);
/* Milliseconds until the moved position is due (0: now), -1 if it did not move. */
extern long outbox_batch_persist_wait_ms(const OutboxBatch *batch);
/*
 * Opens a new batch if none is open, reading the paused flag in the same
 * statement; false if there is nothing to send or *paused.
 */
extern bool outbox_batch_begin(OutboxBatch *batch, bool *paused);
/*
 * Reads the next chunk from the current position: at most max_events events
 * and max_bytes bytes of payload, key and headers (a single larger event
 * comes alone). Rows of one transaction come in (xid, id) index order,
 * without sorting. Rows of the open batch that vanished from the outbox
 * (TRUNCATE, DELETE by hand) are logged and left behind: the batch's row
 * counts are corrected, so the position moves past them. Sets *skipped to
 * the number of rows found missing.
 */
extern int	outbox_batch_fetch(OutboxBatch *batch, int max_events, int64 max_bytes,
							   MemoryContext cxt, OutboxEvent **events, int64 *skipped);
/* Moves the position (e.g. as relay_decide() computed it); closes a finished batch. */
extern void outbox_batch_move(OutboxBatch *batch, int pos_index, int pos_done,
							  int64 pos_last_id);

/*
 * The batch's state after the position moves to (pos_index, pos_done,
 * pos_last_id), as a position record for Kafka with sequence number seq.
 * Strings point into the batch's memory; nothing is changed.
 */
struct RelayPosition;
extern void outbox_batch_describe(const OutboxBatch *batch, int pos_index, int pos_done,
								  int64 pos_last_id, int64 seq, struct RelayPosition *out);
/* Takes over a position read back from Kafka (same state_id, later seq). */
extern void outbox_batch_adopt(OutboxBatch *batch, const struct RelayPosition *pos);

#endif
