/*
 * launcher.c: starts and stops one relay worker per relayed database.
 *
 * A background worker can connect to one database only, so the launcher
 * (connected to none: it reads the shared catalog pg_database) runs a relay
 * worker for each database that edu_outbox.database names, and adjusts the
 * set when the setting is reloaded or databases come and go.
 *
 * With '*', a database is relayed if it has the extension. The launcher
 * cannot see pg_extension of other databases, so it starts a worker there
 * anyway; the worker exits quietly when the extension is absent, and the
 * launcher remembers that until CREATE EXTENSION commits in that database
 * (the commit wakes the launcher and names the database). A database new to
 * the launcher is looked at once. An idle cluster therefore costs one
 * catalog scan every LAUNCHER_NAP_MS and no processes.
 *
 * The launcher is the only one who assigns shared-memory slots to
 * databases; a worker is told its slot number and attaches to it.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "launcher.h"
#include "settings.h"
#include "shared_state.h"

#define LAUNCHER_NAP_MS 10000	/* how often new databases are looked for */
#define WORKER_RESTART_MS 5000	/* pause before restarting a failed worker */

/* A database to relay. */
typedef struct WantedDb
{
	Oid			dboid;
	char		name[NAMEDATALEN];
	bool		needs_extension;	/* only through '*': relayed if it has the extension */
} WantedDb;

/* What the launcher knows about each slot's worker. */
typedef struct SlotWorker
{
	BackgroundWorkerHandle *handle; /* NULL: no worker registered */
	TimestampTz restart_at;		/* a failed worker is started again from then */
	bool		stopping;		/* asked to stop */
	char		dbname[NAMEDATALEN];
} SlotWorker;

static SlotWorker *slot_workers;
static Oid *no_extension;		/* '*' databases found without the extension */
static int	n_no_extension;
static MemoryContext scan_cxt;
static List *slots_full_logged = NIL;	/* databases reported as finding no free slot */
static bool workers_full_logged = false;
static List *missing_logged = NIL;	/* listed names already reported missing */

void
outbox_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "edu_outbox");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "outbox_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "edu_outbox launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "edu_outbox launcher");
	RegisterBackgroundWorker(&worker);
}

/* The names in edu_outbox.database; *all is set for '*'. Allocated in the caller's context. */
static List *
listed_names(bool *all)
{
	char	   *copy = pstrdup(outbox_database);
	List	   *names = NIL;
	ListCell   *lc;

	*all = false;
	if (!SplitGUCList(copy, ',', &names))
		return NIL;				/* the check hook refuses such a value */
	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), "*") == 0)
			*all = true;
	return names;
}

static bool
name_in(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	return false;
}

bool
outbox_database_listed(const char *dbname)
{
	bool		all;
	List	   *names = listed_names(&all);

	return all || name_in(names, dbname);
}

/*
 * Reads pg_database and returns the databases to relay now (in scan_cxt).
 * Listed names that do not exist are logged once.
 */
static WantedDb *
wanted_databases(int *n)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		all;
	List	   *names;
	List	   *found = NIL;
	WantedDb   *dbs;
	int			cap = 16;
	ListCell   *lc;

	*n = 0;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	MemoryContextSwitchTo(scan_cxt);
	names = listed_names(&all);
	dbs = palloc(sizeof(WantedDb) * cap);

	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		const char *name = NameStr(db->datname);
		bool		listed = name_in(names, name);

		if (listed)
			found = lappend(found, pstrdup(name));
		if (!db->datallowconn || db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			continue;
		if (!listed && (!all || db->datistemplate))
			continue;
		if (*n == cap)
		{
			cap *= 2;
			dbs = repalloc(dbs, sizeof(WantedDb) * cap);
		}
		dbs[*n].dboid = db->oid;
		strlcpy(dbs[*n].name, name, NAMEDATALEN);
		dbs[*n].needs_extension = !listed;
		(*n)++;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(scan_cxt);

	foreach(lc, names)
	{
		char	   *name = lfirst(lc);

		if (strcmp(name, "*") == 0 || name_in(found, name) || name_in(missing_logged, name))
			continue;
		ereport(LOG,
				(errmsg("edu_outbox cannot relay database \"%s\": it does not exist", name),
				 errhint("Create the database or correct \"%s\" and reload.", "edu_outbox.database")));
		MemoryContextSwitchTo(TopMemoryContext);
		missing_logged = lappend(missing_logged, pstrdup(name));
		MemoryContextSwitchTo(scan_cxt);
	}
	return dbs;
}

static bool
known_without_extension(Oid dboid)
{
	for (int i = 0; i < n_no_extension; i++)
		if (no_extension[i] == dboid)
			return true;
	return false;
}

static void
note_without_extension(Oid dboid)
{
	if (known_without_extension(dboid) || n_no_extension >= 1024)
		return;
	if (no_extension == NULL)
		no_extension = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * 1024);
	no_extension[n_no_extension++] = dboid;
}

/* CREATE EXTENSION ran in this database: look at it again. */
static void
forget_without_extension(Oid dboid)
{
	for (int i = 0; i < n_no_extension; i++)
		if (no_extension[i] == dboid)
			no_extension[i--] = no_extension[--n_no_extension];
}

static Oid
slot_dboid(int i)
{
	OutboxSlot *slot = &outbox_shared->slots[i];
	Oid			dboid;

	SpinLockAcquire(&slot->mutex);
	dboid = slot->dboid;
	SpinLockRelease(&slot->mutex);
	return dboid;
}

/* Gives a slot to a database, or takes it back (InvalidOid), with a blank status. */
static void
assign_slot(int i, const WantedDb *db)
{
	OutboxSlot *slot = &outbox_shared->slots[i];

	SpinLockAcquire(&slot->mutex);
	slot->dboid = db ? db->dboid : InvalidOid;
	slot->needs_extension = db ? db->needs_extension : false;
	outbox_slot_clear_status(slot);
	SpinLockRelease(&slot->mutex);

	slot_workers[i].handle = NULL;
	slot_workers[i].restart_at = 0;
	slot_workers[i].stopping = false;
	strlcpy(slot_workers[i].dbname, db ? db->name : "", NAMEDATALEN);
}

static void
start_worker(int i)
{
	BackgroundWorker worker;
	MemoryContext old;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "edu_outbox");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "outbox_relay_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "edu_outbox relay for database %s",
			 slot_workers[i].dbname);
	snprintf(worker.bgw_type, BGW_MAXLEN, "edu_outbox relay");
	worker.bgw_main_arg = Int32GetDatum(i);
	worker.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &slot_workers[i].handle))
	{
		slot_workers[i].handle = NULL;
		slot_workers[i].restart_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																 WORKER_RESTART_MS);
		if (!workers_full_logged)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("edu_outbox cannot start a relay worker for database \"%s\"",
							slot_workers[i].dbname),
					 errdetail("All background worker slots are in use."),
					 errhint("Raise \"%s\" (each relayed database needs one) and restart the server.",
							 "max_worker_processes")));
		workers_full_logged = true;
	}
	else
		workers_full_logged = false;
	MemoryContextSwitchTo(old);
}

/* Notes workers that have stopped, and why; frees the slots no longer needed. */
static void
reap_workers(const WantedDb *dbs, int n)
{
	for (int i = 0; i < outbox_shared->nslots; i++)
	{
		OutboxSlot *slot = &outbox_shared->slots[i];
		SlotWorker *sw = &slot_workers[i];
		Oid			dboid = slot_dboid(i);
		OutboxExitReason reason;
		pid_t		pid;
		bool		wanted = false;

		if (!OidIsValid(dboid))
			continue;
		for (int j = 0; j < n && !wanted; j++)
			wanted = dbs[j].dboid == dboid;
		if (sw->handle != NULL)
		{
			if (GetBackgroundWorkerPid(sw->handle, &pid) != BGWH_STOPPED)
			{
				if (!wanted && !sw->stopping)
				{
					TerminateBackgroundWorker(sw->handle);
					sw->stopping = true;
				}
				continue;
			}
			pfree(sw->handle);
			sw->handle = NULL;
			SpinLockAcquire(&slot->mutex);
			reason = slot->exit_reason;
			SpinLockRelease(&slot->mutex);
			if (reason == OUTBOX_EXIT_NO_EXTENSION)
			{
				note_without_extension(dboid);
				wanted = false;
			}
			else if (wanted && !sw->stopping)
			{
				/* it failed or crashed: start it again after a pause */
				sw->restart_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 WORKER_RESTART_MS);
			}
			sw->stopping = false;	/* stopped on request; wanted again: start now */
		}
		if (!wanted)
			assign_slot(i, NULL);
	}
}

/* Starts workers for the wanted databases that have none; returns the next wake-up in ms. */
static long
start_workers(const WantedDb *dbs, int n)
{
	TimestampTz now = GetCurrentTimestamp();
	long		nap = LAUNCHER_NAP_MS;

	for (int j = 0; j < n; j++)
	{
		int			i,
					free_slot = -1;

		if (dbs[j].needs_extension && known_without_extension(dbs[j].dboid))
			continue;
		for (i = 0; i < outbox_shared->nslots; i++)
		{
			Oid			dboid = slot_dboid(i);

			if (dboid == dbs[j].dboid)
				break;
			if (!OidIsValid(dboid) && free_slot < 0)
				free_slot = i;
		}
		if (i == outbox_shared->nslots)
		{
			if (free_slot < 0)
			{
				if (!list_member_oid(slots_full_logged, dbs[j].dboid))
				{
					ereport(WARNING,
							(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
							 errmsg("edu_outbox cannot relay database \"%s\" now: all %d slots are in use",
									dbs[j].name, outbox_shared->nslots),
							 errdetail("It is relayed once a slot is free."),
							 errhint("Raise \"%s\" and restart the server.",
									 "edu_outbox.max_databases")));
					MemoryContextSwitchTo(TopMemoryContext);
					slots_full_logged = lappend_oid(slots_full_logged, dbs[j].dboid);
					MemoryContextSwitchTo(scan_cxt);
				}
				continue;
			}
			i = free_slot;
			assign_slot(i, &dbs[j]);
		}
		if (slot_workers[i].handle != NULL)
			continue;
		if (slot_workers[i].restart_at > now)
		{
			long		secs;
			int			usecs;

			TimestampDifference(now, slot_workers[i].restart_at, &secs, &usecs);
			nap = Min(nap, secs * 1000 + usecs / 1000 + 1);
			continue;
		}
		start_worker(i);
	}
	return nap;
}

/*
 * Workers left by an earlier launcher (one that failed) are asked to stop:
 * this launcher has no handles for them and starts its own.
 */
static void
stop_leftover_workers(void)
{
	for (int i = 0; i < outbox_shared->nslots; i++)
	{
		OutboxSlot *slot = &outbox_shared->slots[i];
		int			pid;

		for (int tries = 0; tries < 600; tries++)
		{
			SpinLockAcquire(&slot->mutex);
			pid = slot->worker_pid;
			SpinLockRelease(&slot->mutex);
			if (pid == 0)
				break;
			if (tries == 0)
				kill(pid, SIGTERM);
			pg_usleep(100 * 1000L);
		}
		assign_slot(i, NULL);
	}
}

void
outbox_launcher_main(Datum main_arg)
{
	uint32		seen_generation = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* no database: pg_database is a shared catalog */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	scan_cxt = AllocSetContextCreate(TopMemoryContext, "edu_outbox launcher",
									 ALLOCSET_DEFAULT_SIZES);
	slot_workers = MemoryContextAllocZero(TopMemoryContext,
										  sizeof(SlotWorker) * outbox_shared->nslots);
	stop_leftover_workers();

	SpinLockAcquire(&outbox_shared->mutex);
	outbox_shared->launcher_latch = MyLatch;
	outbox_shared->launcher_pid = MyProcPid;
	seen_generation = outbox_shared->extension_generation;
	SpinLockRelease(&outbox_shared->mutex);

	while (!ShutdownRequestPending)
	{
		WantedDb   *dbs;
		int			n;
		long		nap;
		uint32		generation;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			list_free_deep(missing_logged);
			missing_logged = NIL;
			list_free(slots_full_logged);
			slots_full_logged = NIL;
		}
		SpinLockAcquire(&outbox_shared->mutex);
		generation = outbox_shared->extension_generation;
		if (generation - seen_generation > OUTBOX_CREATED_RING)
			n_no_extension = 0; /* too many to tell apart: look at every database again */
		else
			for (; seen_generation != generation; seen_generation++)
				forget_without_extension(outbox_shared->created_in[seen_generation % OUTBOX_CREATED_RING]);
		seen_generation = generation;
		SpinLockRelease(&outbox_shared->mutex);

		MemoryContextReset(scan_cxt);
		dbs = wanted_databases(&n);
		reap_workers(dbs, n);
		nap = start_workers(dbs, n);
		MemoryContextSwitchTo(TopMemoryContext);
		pgstat_report_stat(false);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}

	SpinLockAcquire(&outbox_shared->mutex);
	outbox_shared->launcher_latch = NULL;
	outbox_shared->launcher_pid = 0;
	SpinLockRelease(&outbox_shared->mutex);
	/* exit code 1: restarted after bgw_restart_time if it was stopped while the server runs */
	proc_exit(1);
}
