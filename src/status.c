/*
 * status.c: SQL functions that read the relay's shared state
 * (edu_outbox.worker_status(), edu_outbox.topic_stats()).
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "shared_state.h"

PG_FUNCTION_INFO_V1(outbox_worker_status);
PG_FUNCTION_INFO_V1(outbox_topic_stats);

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
	OutboxSharedState copy;
	TupleDesc	desc;
	Datum		values[9];
	bool		nulls[9] = {0};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "worker_status must return a composite type");
	if (outbox_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("edu_outbox is not loaded through shared_preload_libraries"),
				 errhint("Add edu_outbox to shared_preload_libraries and restart the server to run the relay.")));

	/* copy under the lock, format outside it */
	SpinLockAcquire(&outbox_shared->mutex);
	memcpy(&copy, outbox_shared, offsetof(OutboxSharedState, ntopics));
	SpinLockRelease(&outbox_shared->mutex);

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
	OutboxTopicStat *stats;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	if (outbox_shared == NULL)
		return (Datum) 0;

	stats = palloc(sizeof(OutboxTopicStat) * OUTBOX_MAX_TOPIC_STATS);
	SpinLockAcquire(&outbox_shared->mutex);
	n = outbox_shared->ntopics;
	memcpy(stats, outbox_shared->topics, sizeof(OutboxTopicStat) * n);
	SpinLockRelease(&outbox_shared->mutex);

	for (int i = 0; i < n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {0};

		values[0] = CStringGetTextDatum(stats[i].topic);
		values[1] = Int64GetDatum(stats[i].delivered);
		values[2] = ts_or_null(stats[i].last_delivery_at, &nulls[2]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
