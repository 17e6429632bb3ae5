/*
 * decide.h: what a chunk's delivery reports mean.
 *
 * Given the chunk's events in order, the outcome of each record sent, the
 * dead-letter mode and the keys currently parked, relay_decide() says which
 * events count as handled (a leading run: delivered, dead-lettered, or parked
 * behind a dead letter), which become dead letters, which are parked behind
 * which dead letter, where the relay's position moves, and how many events
 * each topic delivered. Plain C: no PostgreSQL, no Kafka, no globals; the
 * caller owns every array.
 */
#ifndef EDU_OUTBOX_DECIDE_H
#define EDU_OUTBOX_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay.h"

/* What happens to an event Kafka refuses for good (edu_outbox.dead_letter_mode). */
typedef enum DeadLetterMode
{
	DEAD_LETTER_PARK_KEY,		/* dead-letter it; park later events of its key */
	DEAD_LETTER_SKIP,			/* dead-letter it; later events go on */
	DEAD_LETTER_RETRY			/* no dead letters: retry forever */
} DeadLetterMode;

/* One event of the chunk, as the decision sees it. */
typedef struct DecideEvent
{
	int64_t		id;
	int			txn_index;		/* its transaction's index in the open batch */
	const char *topic;
	const char *key;			/* NULL: no key */
	size_t		key_len;
	int			record;			/* index of its record in the chunk; -1: not sent */
} DecideEvent;

/*
 * DecideEvent.record of an event already in the dead-letter table, written
 * by an earlier attempt at the same chunk (exactly_once mode records dead
 * letters before its position passes them): handled, nothing more to do.
 */
#define DECIDE_RECORD_SETTLED (-2)

/* An unresolved dead letter: later events of its topic and key are parked. */
typedef struct DecideHead
{
	int64_t		id;
	const char *topic;
	const char *key;
	size_t		key_len;
} DecideHead;

/* How far into the open batch delivery got. */
typedef struct DecidePosition
{
	int			txn_index;		/* transactions before this one are done */
	int			done;			/* events of txns[txn_index] done */
	int64_t		last_id;		/* id of the last of those (0: none) */
} DecidePosition;

typedef enum DecideVerdict
{
	VERDICT_AGAIN = 0,			/* not handled: read and sent again */
	VERDICT_DELIVERED,			/* acknowledged by the broker */
	VERDICT_DEAD_LETTER,		/* refused for good: moves to the dead-letter table */
	VERDICT_PARKED,				/* held back behind a dead letter of its topic and key */
	VERDICT_SETTLED				/* already a dead letter (DECIDE_RECORD_SETTLED) */
} DecideVerdict;

typedef struct DecideInput
{
	const DecideEvent *events;
	int			nevents;
	const RelayOutcome *outcome;	/* per record */
	const int  *error;			/* per record: rd_kafka_resp_err_t of a FAILED one */
	DeadLetterMode mode;
	const DecideHead *heads;
	int			nheads;
	DecidePosition position;	/* before the chunk */
	const int32_t *txn_rows;	/* events per transaction of the open batch */
	int			ntxns;
} DecideInput;

/* Arrays are the caller's, nevents entries each. */
typedef struct DecideOutput
{
	DecideVerdict *verdict;
	int64_t    *parked_behind;	/* head id, for VERDICT_PARKED */
	int			handled;		/* leading events done with */
	int			stuck;			/* first event not handled, or -1 */
	DecidePosition position;	/* after the handled events */
	const char **topics;		/* distinct topics with deliveries */
	int		   *delivered;		/* events delivered per topic */
	int			ntopics;
} DecideOutput;

extern void relay_decide(const DecideInput *in, DecideOutput *out);

/*
 * Before sending: the dead letter that holds back an event of topic/key, or
 * 0. Only park_key mode parks, and an event without key is never parked.
 */
extern int64_t relay_decide_parked_behind(DeadLetterMode mode, const DecideHead *heads,
										  int nheads, const char *topic,
										  const char *key, size_t key_len);

/*
 * Moves a position past transactions that are complete (done >= rows), e.g.
 * ones whose rows vanished from the outbox.
 */
extern DecidePosition relay_position_skip_done(DecidePosition pos, const int32_t *txn_rows,
											   int ntxns);

#endif							/* EDU_OUTBOX_DECIDE_H */
