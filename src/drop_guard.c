/*
 * drop_guard.c: DROP EXTENSION edu_outbox refuses while events are pending.
 *
 * Dropping the extension drops the outbox, and with it every event not yet
 * delivered. The guard is an event trigger on ddl_command_start that belongs
 * to the extension: it still exists when the DROP that removes it starts, so
 * it fires for that very DROP. It reads the parse tree to tell whether the
 * statement drops edu_outbox (DROP EXTENSION, or DROP SCHEMA ... CASCADE of
 * the extension's schema), counts what would be lost and refuses unless
 * edu_outbox.discard_pending_on_drop is on.
 */
#include "postgres.h"

#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"

#include "outbox_table.h"
#include "settings.h"

PG_FUNCTION_INFO_V1(outbox_guard_drop);

/* The schema edu_outbox was created in; SPI must be connected. */
static Oid
extension_schema(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute("SELECT extnamespace FROM pg_catalog.pg_extension WHERE extname = 'edu_outbox'",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		return InvalidOid;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/* Whether the statement removes the edu_outbox extension; SPI must be connected. */
static bool
drops_outbox(DropStmt *stmt)
{
	Oid			extoid = get_extension_oid("edu_outbox", true);
	ListCell   *lc;

	if (!OidIsValid(extoid))
		return false;
	foreach(lc, stmt->objects)
	{
		Node	   *obj = lfirst(lc);

		if (!IsA(obj, String))
			continue;
		if (stmt->removeType == OBJECT_EXTENSION &&
			strcmp(strVal(obj), "edu_outbox") == 0)
			return true;
		if (stmt->removeType == OBJECT_SCHEMA && stmt->behavior == DROP_CASCADE &&
			get_namespace_oid(strVal(obj), true) == extension_schema())
			return true;
	}
	return false;
}

static int64
count_of(const char *query)
{
	bool		isnull;
	int64		n;

	if (SPI_execute(query, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "edu_outbox: could not count undelivered events");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return isnull ? 0 : n;
}

Datum
outbox_guard_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	int64		pending;
	int64		dead;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "outbox_guard_drop() must be called as an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, DropStmt))
		PG_RETURN_VOID();

	SPI_connect();
	if (!drops_outbox((DropStmt *) trigdata->parsetree))
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	pending = count_of("SELECT count(*) FROM " OUTBOX_SCHEMA ".outbox "
					   "WHERE NOT pg_catalog.pg_visible_in_snapshot(xid, "
					   "(SELECT delivered_snapshot FROM " OUTBOX_SCHEMA ".relay_state))");
	dead = count_of("SELECT count(*) FROM " OUTBOX_SCHEMA ".dead_letter");
	SPI_finish();

	if (pending == 0 && dead == 0)
		PG_RETURN_VOID();
	if (!outbox_discard_pending_on_drop)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot drop extension edu_outbox while " INT64_FORMAT " events are not delivered",
						pending + dead),
				 errdetail(INT64_FORMAT " events are pending and " INT64_FORMAT " dead letters are kept; dropping the extension would discard them.",
						   pending, dead),
				 errhint("Wait until outbox_status() shows no pending events and deal with the dead letters, "
						 "or SET edu_outbox.discard_pending_on_drop = on to discard them.")));
	ereport(WARNING,
			(errmsg("discarding " INT64_FORMAT " pending events and " INT64_FORMAT " dead letters of edu_outbox",
					pending, dead)));
	PG_RETURN_VOID();
}
