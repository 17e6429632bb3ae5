/*
 * relay_worker.c: the background worker that relays committed outbox rows
 * to Kafka.
 *
 * Each cycle is one transaction that records how far the previous chunk got,
 * opens a batch if needed and reads the next chunk; then, outside any
 * transaction, the chunk is sent and the worker waits for the broker's
 * acknowledgements. Only the acknowledged prefix counts as delivered: the
 * rest is read and sent again, so delivery is at least once and in order.
 */
#include "edu_outbox.h"

#include "access/commit_ts.h"
#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "cleanup.h"
#include "../relay/relay.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

typedef enum CycleResult
{
	CYCLE_IDLE,					/* nothing to send */
	CYCLE_PROGRESS,				/* sent and acknowledged; more may follow */
	CYCLE_FAILED,				/* the broker did not take everything */
	CYCLE_NO_EXTENSION			/* extension not (yet) created */
} CycleResult;

/* What the log last said, so each change is logged once rather than per retry. */
typedef enum RelayState
{
	STATE_STARTING,
	STATE_WAITING_FOR_EXTENSION,
	STATE_BAD_CONFIG,
	STATE_DELIVERING,
	STATE_FAILING
} RelayState;

static RelayState relay_state = STATE_STARTING;
static RelayProducer *producer = NULL;
static char *producer_brokers = NULL;	/* configuration the producer was built from */
static char *producer_properties = NULL;
static OutboxBatch batch;
static MemoryContext chunk_cxt = NULL;
static bool brokers_down_logged = false;
static bool producer_stale = false;

void
outbox_register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "edu_outbox");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "outbox_relay_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "edu_outbox relay");
	snprintf(worker.bgw_type, BGW_MAXLEN, "edu_outbox relay");
	RegisterBackgroundWorker(&worker);
}

static void
worker_detach(int code, Datum arg)
{
	outbox_worker_detach();
	if (producer)
	{
		relay_producer_destroy(producer);
		producer = NULL;
	}
}

static void
enter_state(RelayState state)
{
	relay_state = state;
}

static void
drop_producer(void)
{
	relay_producer_destroy(producer);
	producer = NULL;
}

/* Builds the producer if there is none; false (logged once) if the settings are unusable. */
static bool
ensure_producer(void)
{
	char		errbuf[RELAY_ERRLEN];

	if (producer)
		return true;
	producer = relay_producer_create(outbox_brokers, outbox_kafka_properties,
									 errbuf, sizeof(errbuf));
	if (producer == NULL)
	{
		if (relay_state != STATE_BAD_CONFIG)
			ereport(LOG,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("edu_outbox relay cannot create a Kafka producer"),
					 errdetail_internal("%s", errbuf),
					 errhint("Fix \"%s\" or \"%s\" and reload; events stay in the outbox meanwhile.",
							 "edu_outbox.brokers", "edu_outbox.kafka_properties")));
		enter_state(STATE_BAD_CONFIG);
		return false;
	}
	free(producer_brokers);
	free(producer_properties);
	producer_brokers = strdup(outbox_brokers);
	producer_properties = strdup(outbox_kafka_properties);
	brokers_down_logged = false;
	return true;
}

/*
 * Applies a pending SIGHUP. A producer built from settings that changed is
 * marked stale; the caller replaces it once no chunk is in flight.
 */
static void
reload_settings(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	if (producer &&
		(strcmp(producer_brokers, outbox_brokers) != 0 ||
		 strcmp(producer_properties, outbox_kafka_properties) != 0))
		producer_stale = true;
}

static void
replace_stale_producer(void)
{
	if (producer && producer_stale)
	{
		ereport(LOG, (errmsg("edu_outbox relay reconnecting with new Kafka settings")));
		drop_producer();
	}
	producer_stale = false;
}

static bool
extension_ready(void)
{
	return OidIsValid(get_extension_oid("edu_outbox", true));
}

static void
begin_cycle_xact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_cycle_xact(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Records progress, opens a batch if needed and reads the next chunk.
 * Returns the number of events read, or -1 if the extension is missing.
 */
static int
read_chunk(OutboxEvent **events)
{
	int			n = 0;

	begin_cycle_xact("edu_outbox: reading outbox");
	if (!extension_ready())
	{
		end_cycle_xact();
		if (batch.loaded)
		{
			outbox_batch_reset(&batch);
			outbox_cleanup_forget();
		}
		return -1;
	}
	if (!batch.loaded)
		outbox_batch_load(&batch);
	if (batch.dirty)
		outbox_batch_persist(&batch);
	outbox_cleanup(batch.delivered_snapshot);
	if (outbox_batch_begin(&batch))
		n = outbox_batch_fetch(&batch, outbox_batch_size, chunk_cxt, events);
	else if (batch.dirty)
		outbox_batch_persist(&batch);
	end_cycle_xact();
	return n;
}

/* Records the final position, e.g. before exiting. */
static void
persist_progress(void)
{
	if (!batch.dirty)
		return;
	begin_cycle_xact("edu_outbox: saving progress");
	outbox_batch_persist(&batch);
	end_cycle_xact();
}

static void
log_broker_health(void)
{
	RelayHealth h;

	relay_producer_health(producer, &h);
	if (h.brokers_down && !brokers_down_logged)
	{
		ereport(LOG,
				(errmsg("edu_outbox relay cannot reach any Kafka broker"),
				 errdetail_internal("Brokers: %s. Last error: %s", producer_brokers, h.last_error_text),
				 errhint("Events stay in the outbox and are sent once a broker is reachable.")));
		brokers_down_logged = true;
	}
	else if (!h.brokers_down)
		brokers_down_logged = false;
}

/* Sends a chunk and waits for its delivery reports; returns the acknowledged prefix. */
static int
send_chunk(const OutboxEvent *events, int n, RelayBatch *rb)
{
	RelayRecord *records = MemoryContextAlloc(chunk_cxt, sizeof(RelayRecord) * n);
	RelayOutcome *outcome = MemoryContextAlloc(chunk_cxt, sizeof(RelayOutcome) * n);
	TimestampTz shutdown_at = 0;

	for (int i = 0; i < n; i++)
	{
		records[i].id = events[i].id;
		records[i].topic = events[i].topic;
		records[i].key = events[i].key;
		records[i].key_len = events[i].key_len;
		records[i].value = events[i].payload;
		records[i].value_len = events[i].payload_len;
		records[i].headers_json = events[i].headers;
		records[i].timestamp_ms = events[i].timestamp_ms;
	}
	pgstat_report_activity(STATE_RUNNING, psprintf("edu_outbox: sending %d events", n));
	relay_batch_init(rb, n, outcome);
	relay_batch_send(producer, rb, records);

	for (;;)
	{
		RelayHealth h;

		relay_producer_poll(producer, 50);
		relay_producer_health(producer, &h);
		if (relay_batch_settled(rb) || h.fatal)
			break;
		log_broker_health();
		if (ConfigReloadPending)
			reload_settings();
		if (producer_stale)
			break;				/* resend the rest through the new producer */
		if (!PostmasterIsAlive())
			proc_exit(1);
		if (ShutdownRequestPending)
		{
			/* final flush: give in-flight events a bounded chance to be acknowledged */
			if (shutdown_at == 0)
				shutdown_at = GetCurrentTimestamp();
			else if (TimestampDifferenceExceeds(shutdown_at, GetCurrentTimestamp(),
												outbox_final_flush_ms))
				break;
		}
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	return relay_batch_delivered_prefix(rb);
}

static CycleResult
relay_cycle(void)
{
	OutboxEvent *events = NULL;
	RelayBatch	rb;
	RelayHealth h;
	int			n,
				delivered;

	MemoryContextReset(chunk_cxt);
	n = read_chunk(&events);
	if (n < 0)
		return CYCLE_NO_EXTENSION;
	if (n == 0)
		return CYCLE_IDLE;

	delivered = send_chunk(events, n, &rb);
	outbox_batch_advance(&batch, events, delivered);
	if (producer_stale)
	{
		replace_stale_producer();
		return CYCLE_PROGRESS;
	}
	if (delivered == n)
	{
		if (relay_state == STATE_FAILING)
			ereport(LOG, (errmsg("edu_outbox relay is delivering to Kafka again")));
		enter_state(STATE_DELIVERING);
		return CYCLE_PROGRESS;
	}

	relay_producer_health(producer, &h);
	if (relay_state != STATE_FAILING)
		ereport(LOG,
				(errmsg("edu_outbox relay could not deliver event " INT64_FORMAT " to Kafka topic \"%s\"",
						events[delivered].id, events[delivered].topic),
				 errdetail_internal("%s%s%s",
									rb.first_error_text[0] ? rb.first_error_text : "no delivery report before shutdown",
									h.fatal ? "; producer error: " : "",
									h.fatal ? h.last_error_text : ""),
				 errhint("The event and everything after it stay in the outbox and are sent again with backoff.")));
	enter_state(STATE_FAILING);
	/* librdkafka cannot recover from a fatal error: start a new producer, resend from the gap */
	if (h.fatal)
		drop_producer();
	return CYCLE_FAILED;
}

void
outbox_relay_main(Datum main_arg)
{
	int			backoff_ms = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(outbox_database, NULL, 0);
	outbox_worker_attach(MyDatabaseId, MyLatch);
	before_shmem_exit(worker_detach, (Datum) 0);

	chunk_cxt = AllocSetContextCreate(TopMemoryContext, "edu_outbox chunk",
									  ALLOCSET_DEFAULT_SIZES);
	outbox_batch_reset(&batch);

	ereport(LOG,
			(errmsg("edu_outbox relay started for database \"%s\"", outbox_database),
			 errdetail_internal("Brokers: %s.", outbox_brokers)));
	if (!track_commit_timestamp)
		ereport(LOG,
				(errmsg("edu_outbox relay orders transactions that commit close together by first event id"),
				 errhint("Set track_commit_timestamp = on for exact commit order.")));

	while (!ShutdownRequestPending)
	{
		CycleResult result;
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			reload_settings();
		replace_stale_producer();

		if (!ensure_producer())
			result = CYCLE_FAILED;
		else
			result = relay_cycle();

		switch (result)
		{
			case CYCLE_PROGRESS:
				backoff_ms = 0;
				continue;		/* more may be waiting: no sleep */
			case CYCLE_IDLE:
				backoff_ms = 0;
				if (relay_state != STATE_FAILING)
					enter_state(STATE_DELIVERING);
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_NO_EXTENSION:
				if (relay_state != STATE_WAITING_FOR_EXTENSION)
					ereport(LOG,
							(errmsg("edu_outbox relay is waiting for the extension to be created"),
							 errhint("Run CREATE EXTENSION edu_outbox in database \"%s\".",
									 outbox_database)));
				enter_state(STATE_WAITING_FOR_EXTENSION);
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_FAILED:
			default:
				backoff_ms = Min(BACKOFF_MAX_MS, Max(BACKOFF_MIN_MS, backoff_ms * 2));
				timeout = backoff_ms;
				break;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}

	/* Final flush happened inside send_chunk; record what it achieved. */
	persist_progress();
	if (producer)
		drop_producer();
	ereport(LOG, (errmsg("edu_outbox relay shutting down")));
	proc_exit(1);
}
