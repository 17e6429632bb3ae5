/*
 * coalesce.c: gathering commits that arrive close together into one chunk.
 *
 * Every commit that publishes wakes the relay. At a moderate rate of small
 * transactions each wake-up would become its own read transaction and its
 * own produce request; waiting a few milliseconds after a wake-up lets the
 * commits right behind it go in the same chunk, which costs the relay and
 * the broker less per event for a bounded amount of latency. A backlog is
 * read without waiting: the relay only waits when it had caught up.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/guc.h"

#include "coalesce.h"

int			outbox_coalesce_window_ms = 2;

void
outbox_define_coalesce_settings(void)
{
	DefineCustomIntVariable("edu_outbox.coalesce_window",
							"Time the relay waits after a commit woke it, so that commits close behind go in the same chunk.",
							"0 sends at once.",
							&outbox_coalesce_window_ms,
							2, 0, 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

void
outbox_coalesce_wakeups(void)
{
	if (outbox_coalesce_window_ms <= 0 || ShutdownRequestPending)
		return;
	/* not woken by the latch: the commits behind set it again, which is the point */
	(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 outbox_coalesce_window_ms, PG_WAIT_EXTENSION);
}
