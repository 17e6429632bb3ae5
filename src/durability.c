/*
 * durability.c: durable (and replicated) before sent; see durability.h.
 *
 * Why the insert position taken after the batch's snapshot is enough: a
 * transaction becomes visible to snapshots only after its commit record was
 * inserted into WAL (RecordTransactionCommit precedes ProcArrayEndTransaction),
 * so every commit record of the batch ends at or before that position. One
 * XLogFlush up to it makes the whole batch durable, whatever the writers'
 * synchronous_commit was; a standby that has flushed up to it holds the
 * whole batch too.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "replication/syncrep.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "durability.h"
#include "shared_state.h"

char	   *outbox_wait_for_standbys = NULL;
int			outbox_standby_wait_timeout_ms = 0;

#define WAIT_SLEEP_MIN_MS 1
#define WAIT_SLEEP_MAX_MS 100
#define WAIT_LOG_AFTER_MS 1000	/* short waits are normal; only longer ones are logged */

/* WAL insert position when the open batch's snapshot was taken. */
static XLogRecPtr batch_lsn = InvalidXLogRecPtr;

/* Everything up to here is flushed locally and on the standbys waited for. */
static XLogRecPtr durable_lsn = InvalidXLogRecPtr;

/* A physical standby as pg_stat_replication shows it. */
typedef struct Standby
{
	char		name[NAMEDATALEN];
	XLogRecPtr	flush;
} Standby;

/* The standby that holds delivery back, and how. */
typedef struct Laggard
{
	char		name[NAMEDATALEN];
	bool		connected;
	XLogRecPtr	flush;
} Laggard;

static bool
check_wait_for_standbys(char **newval, void **extra, GucSource source)
{
	char	   *raw;
	List	   *names;
	bool		ok;

	if (pg_strcasecmp(*newval, "on") == 0 || pg_strcasecmp(*newval, "off") == 0)
		return true;
	raw = pstrdup(*newval);
	ok = SplitIdentifierString(raw, ',', &names) && names != NIL;
	list_free(names);
	pfree(raw);
	if (!ok)
	{
		GUC_check_errdetail("Use off, on, or a comma-separated list of standby names (application_name).");
		return false;
	}
	return true;
}

void
outbox_define_durability_settings(void)
{
	DefineCustomStringVariable("edu_outbox.wait_for_standbys",
							   "Standbys that must have flushed a batch's transactions before the relay sends it.",
							   "off: none; on: every standby named in synchronous_standby_names, or every connected "
							   "streaming standby when that is empty; or a comma-separated list of standby names "
							   "(application_name, * for every connected one).",
							   &outbox_wait_for_standbys,
							   "off",
							   PGC_SIGHUP, 0,
							   check_wait_for_standbys, NULL, NULL);

	DefineCustomIntVariable("edu_outbox.standby_wait_timeout",
							"Time after which the relay sends a batch although a standby has not flushed it (0: wait for ever).",
							"Anything but 0 trades phantom events after a failover for availability.",
							&outbox_standby_wait_timeout_ms,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

void
outbox_durability_mark(void)
{
	XLogRecPtr	lsn = GetXLogInsertRecPtr();

	/*
	 * At a page boundary the insert position points past the new page's
	 * header, which is not written until the next record is: XLogFlush would
	 * fail ("xlog flush request ... is not satisfied") and a standby would
	 * not report it until more WAL came. Everything so far ends at the page
	 * start.
	 */
	if (XLogSegmentOffset(lsn, wal_segment_size) == SizeOfXLogLongPHD)
		lsn -= SizeOfXLogLongPHD;
	else if (lsn % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		lsn -= SizeOfXLogShortPHD;
	batch_lsn = lsn;
}

/*
 * The standby names to wait for, or NIL for "every connected one".
 * *any is set when the list holds "*" (which also needs one connected).
 */
static List *
wanted_standbys(bool *any)
{
	List	   *names = NIL;

	*any = false;
	if (pg_strcasecmp(outbox_wait_for_standbys, "off") == 0)
		return NIL;
	if (pg_strcasecmp(outbox_wait_for_standbys, "on") == 0)
	{
		if (SyncRepConfig != NULL && SyncRepStandbyNames != NULL && SyncRepStandbyNames[0] != '\0')
		{
			const char *name = SyncRepConfig->member_names;

			for (int i = 0; i < SyncRepConfig->nmembers; i++)
			{
				names = lappend(names, pstrdup(name));
				name += strlen(name) + 1;
			}
		}
	}
	else
	{
		char	   *raw = pstrdup(outbox_wait_for_standbys);

		if (!SplitIdentifierString(raw, ',', &names))
			names = NIL;		/* the check hook makes this impossible */
	}

	for (int i = 0; i < list_length(names); i++)
	{
		if (strcmp((char *) list_nth(names, i), "*") == 0)
		{
			*any = true;
			names = list_delete_nth_cell(names, i);
			i--;
		}
	}
	return names;
}

/*
 * The connected physical standbys (base backups and logical walsenders do
 * not count), read in a short transaction; *out is allocated in the
 * caller's memory context, which is current again on return.
 */
static int
read_standbys(Standby **out)
{
	MemoryContext caller = CurrentMemoryContext;
	int			ret;
	int			n;
	Standby    *s;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "edu_outbox: waiting for standbys");
	ret = SPI_execute("SELECT coalesce(r.application_name, ''), coalesce(r.flush_lsn, '0/0') "
					  "FROM pg_catalog.pg_stat_replication r "
					  "WHERE r.state IN ('streaming', 'catchup') "
					  "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s "
					  "                  WHERE s.active_pid = r.pid AND s.slot_type = 'logical')",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "edu_outbox: reading pg_stat_replication failed: %s", SPI_result_code_string(ret));
	n = (int) SPI_processed;
	s = MemoryContextAllocZero(caller, sizeof(Standby) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		char	   *name = SPI_getvalue(tup, SPI_tuptable->tupdesc, 1);

		strlcpy(s[i].name, name ? name : "", NAMEDATALEN);
		s[i].flush = DatumGetLSN(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	pgstat_report_activity(STATE_IDLE, NULL);
	*out = s;
	return n;
}

/*
 * Whether some standby waited for has not flushed lsn; if so, fills in the
 * one furthest behind.
 */
static bool
find_laggard(XLogRecPtr lsn, Laggard *lag)
{
	bool		any;
	List	   *names = wanted_standbys(&any);
	bool		every_connected = any || (names == NIL &&
										   pg_strcasecmp(outbox_wait_for_standbys, "on") == 0);
	Standby    *standbys;
	int			n;
	bool		found = false;
	ListCell   *lc;

	if (names == NIL && !every_connected)
		return false;
	n = read_standbys(&standbys);

	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		bool		connected = false;
		XLogRecPtr	best = InvalidXLogRecPtr;

		for (int i = 0; i < n; i++)
			if (pg_strcasecmp(standbys[i].name, name) == 0)
			{
				connected = true;
				best = Max(best, standbys[i].flush);
			}
		if (best >= lsn)
			continue;
		if (!found || (lag->connected && (!connected || best < lag->flush)))
		{
			strlcpy(lag->name, name, NAMEDATALEN);
			lag->connected = connected;
			lag->flush = best;
		}
		found = true;
	}
	if (every_connected)
	{
		for (int i = 0; i < n; i++)
		{
			if (standbys[i].flush >= lsn)
				continue;
			if (!found || (lag->connected && standbys[i].flush < lag->flush))
			{
				strlcpy(lag->name, standbys[i].name, NAMEDATALEN);
				lag->connected = true;
				lag->flush = standbys[i].flush;
			}
			found = true;
		}
		/* "*" in a list, like in synchronous_standby_names, needs at least one */
		if (any && n == 0 && !found)
		{
			strlcpy(lag->name, "*", NAMEDATALEN);
			lag->connected = false;
			lag->flush = InvalidXLogRecPtr;
			found = true;
		}
	}
	return found;
}

static char *
describe_lag(const Laggard *lag, XLogRecPtr lsn)
{
	if (!lag->connected)
		return psprintf("waiting for standby \"%s\" to flush WAL up to %X/%X: not connected",
						lag->name, LSN_FORMAT_ARGS(lsn));
	return psprintf("waiting for standby \"%s\" to flush WAL up to %X/%X: flushed up to %X/%X, "
					UINT64_FORMAT " bytes behind",
					lag->name, LSN_FORMAT_ARGS(lsn), LSN_FORMAT_ARGS(lag->flush),
					(uint64) (lsn - lag->flush));
}

bool
outbox_durability_wait(void (*reload) (void))
{
	XLogRecPtr	lsn = batch_lsn;
	TimestampTz started = 0;
	bool		logged = false;
	long		sleep_ms = WAIT_SLEEP_MIN_MS;
	MemoryContext cxt,
				old;

	if (XLogRecPtrIsInvalid(lsn) || lsn <= durable_lsn)
		return true;

	/* Durable here first: a standby only ever gets WAL that is flushed locally. */
	XLogFlush(lsn);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "edu_outbox standby wait",
								ALLOCSET_SMALL_SIZES);
	for (;;)
	{
		Laggard		lag;
		bool		behind;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			reload();
		if (ShutdownRequestPending)
		{
			MemoryContextDelete(cxt);
			return false;
		}

		if (pg_strcasecmp(outbox_wait_for_standbys, "off") == 0)
			break;				/* the common case needs no look at pg_stat_replication */
		old = MemoryContextSwitchTo(cxt);
		behind = find_laggard(lsn, &lag);
		MemoryContextSwitchTo(old);
		MemoryContextReset(cxt);
		if (!behind)
			break;

		if (started == 0)
			started = GetCurrentTimestamp();
		else if (outbox_standby_wait_timeout_ms > 0 &&
				 TimestampDifferenceExceeds(started, GetCurrentTimestamp(),
											outbox_standby_wait_timeout_ms))
		{
			ereport(WARNING,
					(errmsg("edu_outbox relay is sending events that standby \"%s\" does not have yet",
							lag.name),
					 errdetail("It waited %d ms, the limit set by \"%s\"; a failover to that standby now leaves these events in Kafka without their transactions.",
							   outbox_standby_wait_timeout_ms, "edu_outbox.standby_wait_timeout")));
			logged = false;
			break;
		}

		old = MemoryContextSwitchTo(cxt);
		outbox_status_set("waiting for standby", NULL);
		outbox_status_error(describe_lag(&lag, lsn));
		if (!logged && TimestampDifferenceExceeds(started, GetCurrentTimestamp(), WAIT_LOG_AFTER_MS))
		{
			ereport(LOG,
					(errmsg("edu_outbox relay is %s", describe_lag(&lag, lsn)),
					 errdetail("Events are sent only once every standby named by \"%s\" has the transactions that wrote them.",
							   "edu_outbox.wait_for_standbys"),
					 errhint("Bring the standby back or take it out of \"%s\"; until then events stay in the outbox.",
							 "edu_outbox.wait_for_standbys")));
			logged = true;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(cxt);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		sleep_ms = Min(sleep_ms * 2, WAIT_SLEEP_MAX_MS);
	}
	MemoryContextDelete(cxt);

	if (logged)
		ereport(LOG, (errmsg("edu_outbox relay is no longer waiting for standbys to flush WAL up to %X/%X",
							 LSN_FORMAT_ARGS(lsn))));
	if (started != 0)
		outbox_status_set("delivering", NULL);
	durable_lsn = lsn;
	return true;
}
