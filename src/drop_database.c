/*
 * drop_database.c: DROP DATABASE refuses to run while any other process is
 * connected to the database, and a relayed database always has its relay
 * worker connected. So before DROP DATABASE runs, the worker of that
 * database is asked to stop (it flushes and saves its position as at any
 * shutdown); DROP DATABASE waits a few seconds for it. The launcher starts
 * a failed or stopped worker again only after a pause, by which time the
 * database is gone, or, if DROP DATABASE failed, is relayed again.
 *
 * Only the database's owner (or a superuser) gets the worker stopped, so
 * that nobody else can stall the relay by issuing DROP DATABASE.
 */
#include "postgres.h"

#include <signal.h>

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"

#include "compat.h"
#include "drop_database.h"
#include "shared_state.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

static void
stop_relay_of(const char *dbname)
{
	Oid			dboid = get_database_oid(dbname, true);
	OutboxSlot	slot;

	if (!OidIsValid(dboid) || !compat_database_ownercheck(dboid, GetUserId()))
		return;					/* DROP DATABASE reports it */
	if (outbox_slot_copy(dboid, &slot, false) && slot.worker_pid != 0)
	{
		ereport(LOG,
				(errmsg("edu_outbox stops the relay worker of database \"%s\" for DROP DATABASE",
						dbname)));
		kill(slot.worker_pid, SIGTERM);
	}
}

static void
outbox_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					   ProcessUtilityContext context, ParamListInfo params,
					   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, DropdbStmt))
		stop_relay_of(((DropdbStmt *) pstmt->utilityStmt)->dbname);

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

void
outbox_drop_database_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = outbox_process_utility;
}
