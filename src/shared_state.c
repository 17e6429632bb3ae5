/*
 * shared_state.c: the little shared memory the relay needs, and the commit
 * hook that wakes it.
 *
 * A backend that published sets the worker's latch when its transaction
 * commits, so delivery starts within milliseconds instead of at the next
 * poll. Nothing here may fail at commit: the rows are already visible.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "shared_state.h"

OutboxSharedState *outbox_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static bool xact_callback_registered = false;
static bool published_in_xact = false;

static void
outbox_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(OutboxSharedState)));
}

static void
outbox_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	outbox_shared = ShmemInitStruct("edu_outbox", sizeof(OutboxSharedState), &found);
	if (!found)
	{
		memset(outbox_shared, 0, sizeof(OutboxSharedState));
		SpinLockInit(&outbox_shared->mutex);
		outbox_shared->dboid = InvalidOid;
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

void
outbox_worker_attach(Oid dboid, Latch *latch)
{
	if (outbox_shared == NULL)
		return;
	SpinLockAcquire(&outbox_shared->mutex);
	outbox_shared->dboid = dboid;
	outbox_shared->worker_latch = latch;
	outbox_shared->worker_pid = MyProcPid;
	outbox_shared->started_at = GetCurrentTimestamp();
	outbox_shared->delivered = 0;
	outbox_shared->last_delivery_at = 0;
	outbox_shared->dead_lettered = 0;
	outbox_shared->ntopics = 0;
	strlcpy(outbox_shared->worker_state, "starting", sizeof(outbox_shared->worker_state));
	strlcpy(outbox_shared->producer_state, "none", sizeof(outbox_shared->producer_state));
	SpinLockRelease(&outbox_shared->mutex);
}

void
outbox_worker_detach(void)
{
	if (outbox_shared == NULL)
		return;
	SpinLockAcquire(&outbox_shared->mutex);
	outbox_shared->dboid = InvalidOid;
	outbox_shared->worker_latch = NULL;
	outbox_shared->worker_pid = 0;
	strlcpy(outbox_shared->worker_state, "stopped", sizeof(outbox_shared->worker_state));
	strlcpy(outbox_shared->producer_state, "none", sizeof(outbox_shared->producer_state));
	SpinLockRelease(&outbox_shared->mutex);
}

void
outbox_status_set(const char *worker_state, const char *producer_state)
{
	if (outbox_shared == NULL)
		return;
	SpinLockAcquire(&outbox_shared->mutex);
	if (worker_state)
		strlcpy(outbox_shared->worker_state, worker_state, sizeof(outbox_shared->worker_state));
	if (producer_state)
		strlcpy(outbox_shared->producer_state, producer_state, sizeof(outbox_shared->producer_state));
	SpinLockRelease(&outbox_shared->mutex);
}

void
outbox_status_error(const char *error)
{
	TimestampTz now = GetCurrentTimestamp();

	if (outbox_shared == NULL)
		return;
	SpinLockAcquire(&outbox_shared->mutex);
	strlcpy(outbox_shared->last_error, error, sizeof(outbox_shared->last_error));
	outbox_shared->last_error_at = now;
	SpinLockRelease(&outbox_shared->mutex);
}

/* Slot for a topic; the last slot collects topics that do not fit. Mutex held. */
static OutboxTopicStat *
topic_slot(const char *topic)
{
	OutboxTopicStat *slot;

	for (int i = 0; i < outbox_shared->ntopics; i++)
		if (strcmp(outbox_shared->topics[i].topic, topic) == 0)
			return &outbox_shared->topics[i];
	if (outbox_shared->ntopics < OUTBOX_MAX_TOPIC_STATS - 1)
	{
		slot = &outbox_shared->topics[outbox_shared->ntopics++];
		strlcpy(slot->topic, topic, sizeof(slot->topic));
		return slot;
	}
	slot = &outbox_shared->topics[OUTBOX_MAX_TOPIC_STATS - 1];
	if (outbox_shared->ntopics < OUTBOX_MAX_TOPIC_STATS)
	{
		outbox_shared->ntopics = OUTBOX_MAX_TOPIC_STATS;
		strlcpy(slot->topic, "(other)", sizeof(slot->topic));
	}
	return slot;
}

void
outbox_status_delivered(const char *const *topics, const int *counts, int ntopics)
{
	TimestampTz now = GetCurrentTimestamp();

	if (outbox_shared == NULL || ntopics == 0)
		return;
	SpinLockAcquire(&outbox_shared->mutex);
	outbox_shared->last_delivery_at = now;
	for (int i = 0; i < ntopics; i++)
	{
		OutboxTopicStat *slot = topic_slot(topics[i]);

		outbox_shared->delivered += counts[i];
		slot->delivered += counts[i];
		slot->last_delivery_at = now;
	}
	SpinLockRelease(&outbox_shared->mutex);
}

void
outbox_status_dead_lettered(int n)
{
	if (outbox_shared == NULL)
		return;
	SpinLockAcquire(&outbox_shared->mutex);
	outbox_shared->dead_lettered += n;
	SpinLockRelease(&outbox_shared->mutex);
}

static void
outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (published_in_xact && outbox_shared != NULL)
			{
				Latch	   *latch = NULL;

				SpinLockAcquire(&outbox_shared->mutex);
				if (outbox_shared->dboid == MyDatabaseId)
					latch = outbox_shared->worker_latch;
				SpinLockRelease(&outbox_shared->mutex);
				if (latch)
					SetLatch(latch);
			}
			published_in_xact = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction commits elsewhere; the timed poll finds it */
			published_in_xact = false;
			break;
		default:
			break;
	}
}

void
outbox_wake_worker_at_commit(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(outbox_xact_callback, NULL);
		xact_callback_registered = true;
	}
	published_in_xact = true;
}
