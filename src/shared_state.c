/*
 * shared_state.c: the little shared memory the relay needs, and the commit
 * hooks that wake it.
 *
 * There is one slot per relayed database. The launcher is the only one who
 * assigns a slot to a database (dboid); the database's worker then owns the
 * slot's status fields, and backends of that database read them.
 *
 * A backend that published sets its database's worker latch when its
 * transaction commits, so delivery starts within milliseconds instead of at
 * the next poll; CREATE EXTENSION wakes the launcher the same way. Nothing
 * here may fail at commit: the rows are already visible.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "settings.h"
#include "shared_state.h"

OutboxSharedState *outbox_shared = NULL;

static OutboxSlot *my_slot = NULL;	/* the relay worker's own slot */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static bool xact_callback_registered = false;
static bool published_in_xact = false;
static bool control_in_xact = false;
static bool extension_created_in_xact = false;

static Size
outbox_shmem_size(void)
{
	return add_size(offsetof(OutboxSharedState, slots),
					mul_size(sizeof(OutboxSlot), outbox_max_databases));
}

static void
outbox_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(outbox_shmem_size()));
}

static void
outbox_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	outbox_shared = ShmemInitStruct("edu_outbox", outbox_shmem_size(), &found);
	if (!found)
	{
		memset(outbox_shared, 0, outbox_shmem_size());
		SpinLockInit(&outbox_shared->mutex);
		outbox_shared->nslots = outbox_max_databases;
		for (int i = 0; i < outbox_shared->nslots; i++)
		{
			SpinLockInit(&outbox_shared->slots[i].mutex);
			outbox_shared->slots[i].dboid = InvalidOid;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
outbox_shmem_init_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = outbox_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = outbox_shmem_startup;
}

/* Takes over the slot the launcher assigned; its counters start from zero. */
/* A blank status: no worker, nothing delivered, no error. Caller holds slot->mutex. */
void
outbox_slot_clear_status(OutboxSlot *slot)
{
	slot->exit_reason = OUTBOX_EXIT_NONE;
	slot->worker_latch = NULL;
	slot->worker_paused = false;
	slot->worker_pid = 0;
	slot->started_at = 0;
	strlcpy(slot->worker_state, "starting", sizeof(slot->worker_state));
	strlcpy(slot->producer_state, "none", sizeof(slot->producer_state));
	slot->delivered = 0;
	slot->last_delivery_at = 0;
	slot->dead_lettered = 0;
	slot->last_error[0] = '\0';
	slot->last_error_at = 0;
	slot->ntopics = 0;
}

OutboxSlot *
outbox_worker_attach(int slotno, Latch *latch)
{
	OutboxSlot *slot;

	if (outbox_shared == NULL || slotno < 0 || slotno >= outbox_shared->nslots)
		return NULL;
	slot = &outbox_shared->slots[slotno];
	SpinLockAcquire(&slot->mutex);
	outbox_slot_clear_status(slot);
	slot->worker_latch = latch;
	slot->worker_pid = MyProcPid;
	slot->started_at = GetCurrentTimestamp();
	SpinLockRelease(&slot->mutex);
	my_slot = slot;
	return slot;
}

/* The slot stays assigned: its last state and counters remain readable. */
void
outbox_worker_detach(void)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->worker_latch = NULL;
	my_slot->worker_pid = 0;
	strlcpy(my_slot->worker_state, "stopped", sizeof(my_slot->worker_state));
	strlcpy(my_slot->producer_state, "none", sizeof(my_slot->producer_state));
	SpinLockRelease(&my_slot->mutex);
	my_slot = NULL;
}

void
outbox_worker_set_exit_reason(OutboxExitReason reason)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->exit_reason = reason;
	SpinLockRelease(&my_slot->mutex);
}

void
outbox_status_set(const char *worker_state, const char *producer_state)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	if (worker_state)
		strlcpy(my_slot->worker_state, worker_state, sizeof(my_slot->worker_state));
	if (producer_state)
		strlcpy(my_slot->producer_state, producer_state, sizeof(my_slot->producer_state));
	SpinLockRelease(&my_slot->mutex);
}

void
outbox_status_set_paused(bool paused)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->worker_paused = paused;
	SpinLockRelease(&my_slot->mutex);
}

void
outbox_status_error(const char *error)
{
	TimestampTz now = GetCurrentTimestamp();

	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	strlcpy(my_slot->last_error, error, sizeof(my_slot->last_error));
	my_slot->last_error_at = now;
	SpinLockRelease(&my_slot->mutex);
}

/* Slot for a topic; the last slot collects topics that do not fit. Mutex held. */
static OutboxTopicStat *
topic_slot(const char *topic)
{
	OutboxTopicStat *stat;

	for (int i = 0; i < my_slot->ntopics; i++)
		if (strcmp(my_slot->topics[i].topic, topic) == 0)
			return &my_slot->topics[i];
	if (my_slot->ntopics < OUTBOX_MAX_TOPIC_STATS - 1)
	{
		stat = &my_slot->topics[my_slot->ntopics++];
		strlcpy(stat->topic, topic, sizeof(stat->topic));
		return stat;
	}
	stat = &my_slot->topics[OUTBOX_MAX_TOPIC_STATS - 1];
	if (my_slot->ntopics < OUTBOX_MAX_TOPIC_STATS)
	{
		my_slot->ntopics = OUTBOX_MAX_TOPIC_STATS;
		strlcpy(stat->topic, "(other)", sizeof(stat->topic));
	}
	return stat;
}

void
outbox_status_delivered(const char *const *topics, const int *counts, int ntopics)
{
	TimestampTz now = GetCurrentTimestamp();

	if (my_slot == NULL || ntopics == 0)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->last_delivery_at = now;
	for (int i = 0; i < ntopics; i++)
	{
		OutboxTopicStat *stat = topic_slot(topics[i]);

		my_slot->delivered += counts[i];
		stat->delivered += counts[i];
		stat->last_delivery_at = now;
	}
	SpinLockRelease(&my_slot->mutex);
}

void
outbox_status_dead_lettered(int n)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->dead_lettered += n;
	SpinLockRelease(&my_slot->mutex);
}

bool
outbox_slot_copy(Oid dboid, OutboxSlot *copy, bool with_topics)
{
	if (outbox_shared == NULL || !OidIsValid(dboid))
		return false;
	for (int i = 0; i < outbox_shared->nslots; i++)
	{
		OutboxSlot *slot = &outbox_shared->slots[i];
		bool		match;

		SpinLockAcquire(&slot->mutex);
		match = slot->dboid == dboid;
		if (match)
			memcpy(copy, slot, with_topics ? sizeof(OutboxSlot) :
				   offsetof(OutboxSlot, topics));
		SpinLockRelease(&slot->mutex);
		if (match)
			return true;
	}
	return false;
}

/*
 * The running worker's latch for this database, or NULL. A paused worker
 * delivers nothing, so events alone do not wake it (each wake-up is a cycle
 * of SQL in the relay); pause and resume do.
 */
static Latch *
my_database_worker_latch(bool even_if_paused)
{
	Latch	   *latch = NULL;

	for (int i = 0; i < outbox_shared->nslots; i++)
	{
		OutboxSlot *slot = &outbox_shared->slots[i];
		bool		found;

		SpinLockAcquire(&slot->mutex);
		found = slot->dboid == MyDatabaseId;
		if (found && (even_if_paused || !slot->worker_paused))
			latch = slot->worker_latch;
		SpinLockRelease(&slot->mutex);
		if (found)
			break;
	}
	return latch;
}

static void
outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if ((published_in_xact || control_in_xact) && outbox_shared != NULL)
			{
				Latch	   *latch = my_database_worker_latch(control_in_xact);

				if (latch)
					SetLatch(latch);
			}
			if (extension_created_in_xact && outbox_shared != NULL)
			{
				Latch	   *latch;

				SpinLockAcquire(&outbox_shared->mutex);
				outbox_shared->created_in[outbox_shared->extension_generation % OUTBOX_CREATED_RING] =
					MyDatabaseId;
				outbox_shared->extension_generation++;
				latch = outbox_shared->launcher_latch;
				SpinLockRelease(&outbox_shared->mutex);
				if (latch)
					SetLatch(latch);
			}
			published_in_xact = false;
			control_in_xact = false;
			extension_created_in_xact = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction commits elsewhere; the timed poll finds it */
			published_in_xact = false;
			control_in_xact = false;
			extension_created_in_xact = false;
			break;
		default:
			break;
	}
}

static void
register_xact_callback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(outbox_xact_callback, NULL);
		xact_callback_registered = true;
	}
}

void
outbox_wake_worker_at_commit(void)
{
	register_xact_callback();
	published_in_xact = true;
}

void
outbox_wake_worker_for_control_at_commit(void)
{
	register_xact_callback();
	control_in_xact = true;
}

void
outbox_wake_launcher_at_commit(void)
{
	register_xact_callback();
	extension_created_in_xact = true;
}
