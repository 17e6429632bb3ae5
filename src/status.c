/*
 * status.c: SQL functions that read the shared state of this database's
 * relay worker (edu_outbox.worker_status(), edu_outbox.topic_stats()), let
 * SQL wake it (pause, resume), and tell at CREATE EXTENSION whether the
 * database is relayed at all.
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "launcher.h"
#include "shared_state.h"

PG_FUNCTION_INFO_V1(outbox_worker_status);
PG_FUNCTION_INFO_V1(outbox_topic_stats);
PG_FUNCTION_INFO_V1(outbox_check_database_relayed);

static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

static Datum
ts_or_null(TimestampTz ts, bool *isnull)
{
	*isnull = (ts == 0);
	return TimestampTzGetDatum(ts);
}

Datum
outbox_worker_status(PG_FUNCTION_ARGS)
{
	OutboxSlot	copy;
	TupleDesc	desc;
	Datum		values[9];
	bool		nulls[9] = {0};
	bool		have_slot;
	bool		listed;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "worker_status must return a composite type");
	if (outbox_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("edu_outbox is not loaded through shared_preload_libraries"),
				 errhint("Add edu_outbox to shared_preload_libraries and restart the server to run the relay.")));

	have_slot = outbox_slot_copy(MyDatabaseId, &copy, false);
	listed = outbox_database_listed(get_database_name(MyDatabaseId));
	if (!have_slot || (copy.worker_pid == 0 && !listed))
	{
		/* no worker of this database: say whether one should run */
		memset(&copy, 0, offsetof(OutboxSlot, topics));
		strlcpy(copy.worker_state, listed ? "not started" : "not relayed",
				sizeof(copy.worker_state));
	}

	values[0] = Int32GetDatum(copy.worker_pid);
	nulls[0] = copy.worker_pid == 0;
	values[1] = text_or_null(copy.worker_state[0] ? copy.worker_state : "not started", &nulls[1]);
	values[2] = ts_or_null(copy.started_at, &nulls[2]);
	values[3] = text_or_null(copy.producer_state, &nulls[3]);
	values[4] = Int64GetDatum(copy.delivered);
	values[5] = ts_or_null(copy.last_delivery_at, &nulls[5]);
	values[6] = Int64GetDatum(copy.dead_lettered);
	values[7] = text_or_null(copy.last_error, &nulls[7]);
	values[8] = ts_or_null(copy.last_error_at, &nulls[8]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

Datum
outbox_topic_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	OutboxSlot *copy;

	InitMaterializedSRF(fcinfo, 0);
	copy = palloc(sizeof(OutboxSlot));
	if (!outbox_slot_copy(MyDatabaseId, copy, true))
		return (Datum) 0;

	for (int i = 0; i < copy->ntopics; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {0};

		values[0] = CStringGetTextDatum(copy->topics[i].topic);
		values[1] = Int64GetDatum(copy->topics[i].delivered);
		values[2] = ts_or_null(copy->topics[i].last_delivery_at, &nulls[2]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Run by the install script: wakes the launcher when CREATE EXTENSION
 * commits (with '*' it then relays this database), and warns if nothing
 * will relay the events published here.
 */
Datum
outbox_check_database_relayed(PG_FUNCTION_ARGS)
{
	const char *dbname = get_database_name(MyDatabaseId);

	outbox_wake_launcher_at_commit();
	if (outbox_shared == NULL)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("edu_outbox is not loaded through shared_preload_libraries"),
				 errdetail("Events published in database \"%s\" stay in the outbox: no relay runs.", dbname),
				 errhint("Add edu_outbox to shared_preload_libraries and restart the server to run the relay.")));
	else if (!outbox_database_listed(dbname))
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("database \"%s\" is not relayed to Kafka", dbname),
				 errdetail("Events published here stay in the outbox until the database is relayed."),
				 errhint("Add \"%s\" to \"%s\" (or set it to '*') and reload the configuration.",
						 dbname, "edu_outbox.database")));
	PG_RETURN_VOID();
}
