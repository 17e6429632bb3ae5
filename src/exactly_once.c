/*
 * exactly_once.c: transactions and the position in Kafka (see exactly_once.h).
 */
#include "postgres.h"

#include "access/xlog.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"

#include "exactly_once.h"
#include "settings.h"

/* Each blocking librdkafka call waits this long before the worker looks at its interrupts. */
#define EOS_CALL_TIMEOUT_MS 5000
/* How long reading the position may take before the start is tried again. */
#define EOS_READ_TIMEOUT_MS 15000

static bool ready = false;
static bool initialized = false;	/* init_transactions done for the current producer */
static bool reconcile_pending = false;
static bool kafka_has_position = false;
static RelayPosition kafka_position;

char *
outbox_eos_transactional_id(const char *dbname)
{
	const char *tmpl = outbox_transactional_id[0] ? outbox_transactional_id : "edu_outbox-%s-%d";
	StringInfoData id;

	initStringInfo(&id);
	for (const char *c = tmpl; *c; c++)
	{
		if (c[0] == '%' && c[1] == 'd')
			appendStringInfoString(&id, dbname), c++;
		else if (c[0] == '%' && c[1] == 's')
			appendStringInfo(&id, UINT64_FORMAT, GetSystemIdentifier()), c++;
		else
			appendStringInfoChar(&id, *c);
	}
	return id.data;
}

void
outbox_eos_forget(void)
{
	ready = false;
	initialized = false;
	reconcile_pending = false;
	if (kafka_has_position)
		relay_position_free(&kafka_position);
	kafka_has_position = false;
}

bool
outbox_eos_ready(void)
{
	return ready;
}

RelayTxnResult
outbox_eos_start(RelayProducer *producer, const char *txn_id, char *errbuf, size_t errlen)
{
	RelayTxnResult r;
	char	   *value = NULL;
	size_t		len = 0;
	int			found;

	if (ready)
		return RELAY_TXN_OK;
	if (!initialized)
	{
		r = relay_txn_init(producer, EOS_CALL_TIMEOUT_MS, errbuf, errlen);
		if (r != RELAY_TXN_OK)
			return r;
		initialized = true;
	}
	if (relay_position_topic_ensure(producer, outbox_position_topic, EOS_CALL_TIMEOUT_MS,
									errbuf, errlen) != 0)
		return RELAY_TXN_RETRY;
	found = relay_position_read(outbox_brokers, outbox_kafka_properties,
								outbox_kafka_secrets_file, outbox_position_topic, txn_id,
								EOS_READ_TIMEOUT_MS, &value, &len, errbuf, errlen);
	if (found < 0)
		return RELAY_TXN_RETRY;
	if (kafka_has_position)
		relay_position_free(&kafka_position);
	kafka_has_position = false;
	if (found > 0)
	{
		char		why[RELAY_ERRLEN];

		if (relay_position_decode(value, len, &kafka_position, why, sizeof(why)))
			kafka_has_position = true;
		else
			ereport(WARNING,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("edu_outbox relay ignores an unreadable position in Kafka topic \"%s\"",
							outbox_position_topic),
					 errdetail_internal("Key \"%s\": %s", txn_id, why),
					 errhint("The relay goes on from the position stored in PostgreSQL.")));
		free(value);
	}
	ready = true;
	reconcile_pending = true;
	return RELAY_TXN_OK;
}

bool
outbox_eos_reconcile(OutboxBatch *batch)
{
	bool		adopt;

	if (!reconcile_pending)
		return false;
	reconcile_pending = false;
	adopt = kafka_has_position &&
		strcmp(kafka_position.state_id, batch->state_id) == 0 &&
		kafka_position.seq > batch->position_seq;
	if (!adopt)
		return false;
	ereport(LOG,
			(errmsg("edu_outbox relay resumes from the position it committed to Kafka"),
			 errdetail("Kafka has position " INT64_FORMAT ", PostgreSQL " INT64_FORMAT "; the events in between are in Kafka already and are not sent again.",
					   kafka_position.seq, batch->position_seq)));
	outbox_batch_adopt(batch, &kafka_position);
	return true;
}

/*
 * Between two attempts of a commit or abort that Kafka has not answered yet
 * (brokers down, say): the worker reports why it waits. A shutdown leaves
 * the transaction to the next start, whose init_transactions settles it.
 */
static bool
keep_waiting(void *arg)
{
	void		(**waiting) (void) = arg;

	if (!PostmasterIsAlive())
		proc_exit(1);
	if (ShutdownRequestPending)
		return false;
	(*waiting) ();
	return true;
}

RelayTxnResult
outbox_eos_commit(RelayProducer *producer, const char *txn_id, const OutboxBatch *batch,
				  DecidePosition after, void (*waiting) (void),
				  int64 *seq, char *errbuf, size_t errlen)
{
	RelayPosition pos;
	char	   *json;
	size_t		len;
	bool		added;
	RelayTxnResult r;

	*seq = batch->position_seq + 1;
	outbox_batch_describe(batch, after.txn_index, after.done, after.last_id, *seq, &pos);
	json = relay_position_encode(&pos, &len);
	if (json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("edu_outbox relay cannot describe its position for Kafka"),
				 errdetail_internal("seq " INT64_FORMAT ", state %s, snapshot %s, batch %s, out of memory or invalid.",
									pos.seq, pos.state_id, pos.delivered_snapshot,
									pos.batch_snapshot ? pos.batch_snapshot : "none")));
	added = relay_txn_add_record(producer, outbox_position_topic, txn_id, json, len,
								 errbuf, errlen);
	free(json);
	if (!added)
	{
		r = outbox_eos_abort(producer, waiting, errbuf, errlen);
		return r == RELAY_TXN_OK ? RELAY_TXN_ABORTED : r;
	}

	/* a commit that timed out may be retried; the outcome is the same transaction's */
	return relay_txn_commit_settled(producer, EOS_CALL_TIMEOUT_MS, keep_waiting, &waiting,
									errbuf, errlen);
}

RelayTxnResult
outbox_eos_abort(RelayProducer *producer, void (*waiting) (void), char *errbuf, size_t errlen)
{
	return relay_txn_abort_settled(producer, EOS_CALL_TIMEOUT_MS, keep_waiting, &waiting,
								   errbuf, errlen);
}
