/*
 * relay_control.c: what SQL tells the relay. outbox_pause() sets a flag in
 * relay_state that the worker reads each cycle (here while a batch is open,
 * else with the batch's opening statement, batch.c); pause and resume wake the
 * worker at commit so it notices at once.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"

#include "outbox_table.h"
#include "relay_control.h"
#include "shared_state.h"

PG_FUNCTION_INFO_V1(outbox_wake_relay_at_commit);

bool
outbox_relay_paused(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	bool		paused;
	int			ret;

	/* every cycle of a long batch asks: plan it once */
	if (plan == NULL)
	{
		plan = SPI_prepare("SELECT paused FROM " OUTBOX_SCHEMA ".relay_state", 0, NULL);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	ret = SPI_execute_plan(plan, NULL, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("edu_outbox.relay_state must hold exactly one row")));
	paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return paused;
}

/* edu_outbox.wake_relay_at_commit(), called by outbox_pause() and outbox_resume(). */
Datum
outbox_wake_relay_at_commit(PG_FUNCTION_ARGS)
{
	outbox_wake_worker_for_control_at_commit();
	PG_RETURN_VOID();
}
