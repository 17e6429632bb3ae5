/*
 * shared_state.h: the relay's shared memory. One slot per relayed database
 * (edu_outbox.max_databases of them): the launcher assigns a slot to a
 * database, the database's worker writes its state and counters there, and
 * outbox_status() in that database reads them.
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
#define OUTBOX_CREATED_RING 16		/* recent CREATE EXTENSIONs the launcher can tell apart */

/* Why a worker left its slot; read by the launcher once the worker stopped. */
typedef enum OutboxExitReason
{
	OUTBOX_EXIT_NONE,			/* still running, or crashed / failed */
	OUTBOX_EXIT_NO_EXTENSION,	/* '*' mode: the database has no edu_outbox */
	OUTBOX_EXIT_SHUTDOWN		/* asked to stop (SIGTERM) */
} OutboxExitReason;

typedef struct OutboxTopicStat
{
	char		topic[OUTBOX_TOPIC_NAME_LEN];
	int64		delivered;
	TimestampTz last_delivery_at;
} OutboxTopicStat;

typedef struct OutboxSlot
{
	slock_t		mutex;			/* protects everything below */
	Oid			dboid;			/* database served; InvalidOid: free (launcher sets) */
	bool		needs_extension;	/* exit quietly without the extension (launcher sets) */
	OutboxExitReason exit_reason;	/* worker sets before it exits */
	Latch	   *worker_latch;	/* NULL while no worker runs */
	bool		worker_paused;	/* worker sleeps paused: a commit that only published need not wake it */
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
} OutboxSlot;

typedef struct OutboxSharedState
{
	slock_t		mutex;			/* protects the launcher fields */
	Latch	   *launcher_latch;
	int			launcher_pid;
	uint32		extension_generation;	/* bumped when CREATE EXTENSION commits */
	Oid			created_in[OUTBOX_CREATED_RING];	/* its database, at [generation % ring] */
	int			nslots;
	OutboxSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} OutboxSharedState;

/* NULL unless the library was preloaded. */
extern OutboxSharedState *outbox_shared;

/* _PG_init (preloaded only): reserve and initialise the shared memory. */
extern void outbox_shmem_init_hooks(void);

/* The relay worker's side: its own slot. */
extern OutboxSlot *outbox_worker_attach(int slotno, Latch *latch);
/* A blank status: no worker, nothing delivered, no error. Caller holds slot->mutex. */
extern void outbox_slot_clear_status(OutboxSlot *slot);
extern void outbox_worker_detach(void);
extern void outbox_worker_set_exit_reason(OutboxExitReason reason);
extern void outbox_status_set(const char *worker_state, const char *producer_state);
extern void outbox_status_error(const char *error);
/* The worker, around its sleep: whether it sleeps paused (see worker_paused). */
extern void outbox_status_set_paused(bool paused);
/* Adds counts[i] delivered events to topics[i] (distinct topics, a handful). */
extern void outbox_status_delivered(const char *const *topics, const int *counts, int ntopics);
extern void outbox_status_dead_lettered(int n);

/* Readers: the slot of a database, copied (topics only if with_topics); false if none. */
extern bool outbox_slot_copy(Oid dboid, OutboxSlot *copy, bool with_topics);

/* Backends: wake this database's worker, or the launcher, when the transaction commits. */
extern void outbox_wake_worker_at_commit(void);
/* The same for outbox_pause()/outbox_resume(): wakes a paused worker too. */
extern void outbox_wake_worker_for_control_at_commit(void);
extern void outbox_wake_launcher_at_commit(void);

#endif
