/*
 * cleanup.c: reclaiming outbox space without dead tuples.
 *
 * The outbox is partitioned by (id / 65536) % 4, so ids fill the partitions
 * in turn. Before the id sequence reaches a partition again, the relay
 * truncates it, provided every committed row in it was delivered. Holding
 * ACCESS EXCLUSIVE on the partition while checking guarantees no
 * transaction still has uncommitted rows there; a writer that drew an id
 * for it meanwhile simply inserts after the TRUNCATE.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "cleanup.h"
#include "outbox_table.h"

static int64 cleaned_for_range = -1;	/* range whose successor is clean */
static TimestampTz last_attempt = 0;

void
outbox_cleanup_forget(void)
{
	cleaned_for_range = -1;
	last_attempt = 0;
}

/* Whether the partition holds a committed row not yet delivered. */
static bool
partition_has_undelivered(const char *relname, Datum delivered_snapshot)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {delivered_snapshot};
	bool		isnull;
	bool		result;
	int			ret;

	ret = SPI_execute_with_args(psprintf("SELECT EXISTS (SELECT 1 FROM %s.%s "
										 "WHERE NOT pg_visible_in_snapshot(xid, $1::pg_snapshot))",
										 OUTBOX_SCHEMA, relname),
								1, types, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "edu_outbox: could not inspect %s", relname);
	result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return result;
}

bool
outbox_cleanup(const char *delivered_snapshot)
{
	int64		last_value;
	int64		range;
	int			part;
	char		relname[NAMEDATALEN];
	Oid			nsp;
	Oid			relid;
	bool		isnull;
	int64		total;
	Datum		values[1];
	int			ret;

	/* ranges last seconds even at full speed: look once a second, not every batch */
	if (!TimestampDifferenceExceeds(last_attempt, GetCurrentTimestamp(), 1000))
		return false;
	last_attempt = GetCurrentTimestamp();

	ret = SPI_execute("SELECT last_value FROM " OUTBOX_SCHEMA ".outbox_id_seq", true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "edu_outbox: could not read the outbox id sequence");
	last_value = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	range = last_value / OUTBOX_RANGE;
	if (range == cleaned_for_range)
		return false;

	part = (int) ((range + 1) % OUTBOX_PARTITIONS);
	snprintf(relname, sizeof(relname), "outbox_p%d", part);
	nsp = get_namespace_oid(OUTBOX_SCHEMA, false);
	relid = get_relname_relid(relname, nsp);
	if (!OidIsValid(relid))
		elog(ERROR, "edu_outbox: partition %s.%s is missing", OUTBOX_SCHEMA, relname);

	/*
	 * The parent first, as a TRUNCATE of the whole outbox locks it: holding
	 * a partition while that TRUNCATE waits for it, the batch read of the
	 * parent that follows in this transaction would deadlock. If someone
	 * holds the parent, try again later.
	 */
	if (!ConditionalLockRelationOid(get_relname_relid("outbox", nsp), AccessShareLock))
		return false;

	/* cheap early exit while a backlog is still in there: no lock taken */
	values[0] = CStringGetTextDatum(delivered_snapshot);
	if (partition_has_undelivered(relname, values[0]))
		return false;
	if (!ConditionalLockRelationOid(relid, AccessExclusiveLock))
		return false;			/* a writer is in there; try again later */
	/* under the lock every row is committed or aborted: check again */
	if (partition_has_undelivered(relname, values[0]))
		return false;

	ret = SPI_execute(psprintf("SELECT count(*) FROM %s.%s", OUTBOX_SCHEMA, relname), true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "edu_outbox: could not inspect %s", relname);
	total = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (total > 0)
	{
		ret = SPI_execute(psprintf("TRUNCATE %s.%s", OUTBOX_SCHEMA, relname), false, 0);
		if (ret != SPI_OK_UTILITY)
			elog(ERROR, "edu_outbox: could not truncate %s", relname);
		ereport(DEBUG1,
				(errmsg("edu_outbox relay truncated %s (" INT64_FORMAT " delivered events)",
						relname, total)));
	}
	cleaned_for_range = range;
	return total > 0;
}
