/*
 * shared_state.h: the relay's shared memory. The worker writes its state
 * and counters here; outbox_status() and any backend read them.
 */
#ifndef EDU_OUTBOX_SHARED_STATE_H
#define EDU_OUTBOX_SHARED_STATE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

#define OUTBOX_STATUS_TEXT 256
#define OUTBOX_MAX_TOPIC_STATS 64
#define OUTBOX_TOPIC_NAME_LEN 250

typedef struct OutboxTopicStat
{
	char		topic[OUTBOX_TOPIC_NAME_LEN];
	int64		delivered;
	TimestampTz last_delivery_at;
} OutboxTopicStat;

typedef struct OutboxSharedState
{
	slock_t		mutex;			/* protects everything below */
	Oid			dboid;			/* database the running worker serves */
	Latch	   *worker_latch;	/* NULL while no worker runs */
	int			worker_pid;
	TimestampTz started_at;
	char		worker_state[32];
	char		producer_state[32];
	int64		delivered;
	TimestampTz last_delivery_at;
	int64		dead_lettered;
	char		last_error[OUTBOX_STATUS_TEXT];
	TimestampTz last_error_at;
	int			ntopics;		/* topics beyond the array count as "(other)" */
	OutboxTopicStat topics[OUTBOX_MAX_TOPIC_STATS];
} OutboxSharedState;

/* NULL unless the library was preloaded. */
extern OutboxSharedState *outbox_shared;

/* _PG_init (preloaded only): reserve and initialise the shared memory. */
extern void outbox_shmem_init_hooks(void);
/* The worker announces itself (database, latch) and withdraws at exit. */
extern void outbox_worker_attach(Oid dboid, Latch *latch);
extern void outbox_worker_detach(void);
/* Sets the worker's latch when the current transaction commits. */
extern void outbox_wake_worker_at_commit(void);

extern void outbox_status_set(const char *worker_state, const char *producer_state);
extern void outbox_status_error(const char *error);
/* Adds counts[i] delivered events to topics[i] (distinct topics, a handful). */
extern void outbox_status_delivered(const char *const *topics, const int *counts, int ntopics);
extern void outbox_status_dead_lettered(int n);

#endif
