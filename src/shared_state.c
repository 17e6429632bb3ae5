/*
 * shared_state.c: the little shared memory the relay needs, and the commit
 * hook that wakes it.
 *
 * A backend that published sets the worker's latch when its transaction
 * commits, so delivery starts within milliseconds instead of at the next
 * poll. Nothing here may fail at commit: the rows are already visible.
 */
#include "edu_outbox.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

typedef struct OutboxSharedState
{
	slock_t		mutex;
	Oid			dboid;			/* database the running worker serves */
	Latch	   *worker_latch;	/* NULL while no worker runs */
} OutboxSharedState;

static OutboxSharedState *shared = NULL;

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
	shared = ShmemInitStruct("edu_outbox", sizeof(OutboxSharedState), &found);
	if (!found)
	{
		SpinLockInit(&shared->mutex);
		shared->dboid = InvalidOid;
		shared->worker_latch = NULL;
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
	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	shared->dboid = dboid;
	shared->worker_latch = latch;
	SpinLockRelease(&shared->mutex);
}

void
outbox_worker_detach(void)
{
	outbox_worker_attach(InvalidOid, NULL);
}

static void
outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (published_in_xact && shared != NULL)
			{
				Latch	   *latch = NULL;

				SpinLockAcquire(&shared->mutex);
				if (shared->dboid == MyDatabaseId)
					latch = shared->worker_latch;
				SpinLockRelease(&shared->mutex);
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
