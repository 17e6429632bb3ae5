/*
 * exactly_once.h: edu_outbox.delivery = 'exactly_once'.
 *
 * Every chunk is one Kafka transaction. Besides the chunk's events it holds
 * a position record (relay/position.c) in edu_outbox.position_topic, keyed
 * by the relay's transactional.id: where delivery stands once the
 * transaction commits, numbered by relay_state.position_seq. The position
 * in PostgreSQL is written afterwards, asynchronously. So after a crash
 * between the two, or a PostgreSQL crash that lost the relay's last
 * commits, Kafka's position is the later one, and the relay resumes from it
 * instead of sending the chunk again. An aborted transaction leaves nothing
 * visible to read_committed consumers and moves no position.
 */
#ifndef EDU_OUTBOX_EXACTLY_ONCE_H
#define EDU_OUTBOX_EXACTLY_ONCE_H

#include "postgres.h"

#include "batch.h"
#include "../relay/decide.h"
#include "../relay/relay.h"

/* The transactional.id of this database's relay (edu_outbox.transactional_id filled in), palloc'ed. */
extern char *outbox_eos_transactional_id(const char *dbname);

/*
 * For a new producer, outside a transaction: initializes its transactions
 * (which fences older producers of the same id and settles their open
 * transaction), creates the position topic if missing and reads the last
 * committed position. RELAY_TXN_RETRY: try again later.
 */
extern RelayTxnResult outbox_eos_start(RelayProducer *producer, const char *txn_id,
									   char *errbuf, size_t errlen);
/* True once outbox_eos_start succeeded for the current producer. */
extern bool outbox_eos_ready(void);
/* The producer is gone: the next one starts over. */
extern void outbox_eos_forget(void);

/*
 * In the read transaction, with the batch loaded: once per start, the
 * batch takes over Kafka's position if it belongs to this relay_state and
 * is later than PostgreSQL's. True if it did.
 */
extern bool outbox_eos_reconcile(OutboxBatch *batch);

/*
 * Adds the position after the chunk (seq = batch's + 1) to the open
 * transaction and commits it. RELAY_TXN_OK: the events and the position are
 * in Kafka; the caller moves the batch and sets its position_seq to *seq.
 * A commit that cannot finish yet (no broker, say) is retried; waiting() is
 * called between the attempts, so the worker can report why it waits.
 */
extern RelayTxnResult outbox_eos_commit(RelayProducer *producer, const char *txn_id,
										const OutboxBatch *batch, DecidePosition after,
										void (*waiting) (void),
										int64 *seq, char *errbuf, size_t errlen);

/*
 * Aborts the open transaction, calling again while Kafka does not answer
 * (waiting() between attempts, as for commit): a producer is never dropped
 * with its abort unfinished. RELAY_TXN_RETRY only when shutting down.
 */
extern RelayTxnResult outbox_eos_abort(RelayProducer *producer, void (*waiting) (void),
									   char *errbuf, size_t errlen);

#endif
