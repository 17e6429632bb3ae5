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

#include <sys/stat.h>

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
#include "dead_letter.h"
#include "shared_state.h"
#include "../relay/relay.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

typedef enum CycleResult
{
	CYCLE_IDLE,					/* nothing to send */
	CYCLE_PROGRESS,				/* sent and acknowledged; more may follow */
	CYCLE_FAILED,				/* the broker did not take everything */
	CYCLE_PAUSED,				/* outbox_pause() is in effect */
	CYCLE_NO_EXTENSION			/* extension not (yet) created */
} CycleResult;

/* What the log last said, so each change is logged once rather than per retry. */
typedef enum RelayState
{
	RELAY_STARTING,
	RELAY_WAITING_FOR_EXTENSION,
	RELAY_BAD_CONFIG,
	RELAY_DELIVERING,
	RELAY_PAUSED,
	RELAY_FAILING
} RelayState;

static const char *const state_names[] = {
	"starting", "waiting for extension", "bad configuration", "delivering",
	"paused", "failing"
};

static RelayState relay_state = RELAY_STARTING;
static RelayProducer *producer = NULL;
static char *producer_brokers = NULL;	/* configuration the producer was built from */
static char *producer_properties = NULL;
static char *producer_secrets_file = NULL;
static char producer_secrets_stamp[64] = "";
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
	outbox_status_set(state_names[state], NULL);
}

static void
drop_producer(void)
{
	relay_producer_destroy(producer);
	producer = NULL;
	outbox_status_set(NULL, "none");
}

/*
 * Identifies the secrets file's current contents (inode, size, mtime in ns):
 * a reload rebuilds the producer when it changed, e.g. a rotated password.
 */
static const char *
secrets_file_stamp(void)
{
	static char stamp[64];
	struct stat st;

	if (outbox_kafka_secrets_file[0] == '\0' || stat(outbox_kafka_secrets_file, &st) != 0)
		return "";
	snprintf(stamp, sizeof(stamp), "%lu/%ld/%ld.%09ld", (unsigned long) st.st_ino,
			 (long) st.st_size, (long) st.st_mtim.tv_sec, (long) st.st_mtim.tv_nsec);
	return stamp;
}

/* Builds the producer if there is none; false (logged once) if the settings are unusable. */
static bool
ensure_producer(void)
{
	char		errbuf[RELAY_ERRLEN];

	if (producer)
		return true;
	producer = relay_producer_create(outbox_brokers, outbox_kafka_properties,
									 outbox_kafka_secrets_file, errbuf, sizeof(errbuf));
	if (producer == NULL)
	{
		if (relay_state != RELAY_BAD_CONFIG)
			ereport(LOG,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("edu_outbox relay cannot create a Kafka producer"),
					 errdetail_internal("%s", errbuf),
					 errhint("Fix \"%s\", \"%s\" or \"%s\" and reload; events stay in the outbox meanwhile.",
							 "edu_outbox.brokers", "edu_outbox.kafka_properties",
							 "edu_outbox.kafka_secrets_file")));
		enter_state(RELAY_BAD_CONFIG);
		outbox_status_error(errbuf);
		return false;
	}
	outbox_status_set(NULL, "created");
	free(producer_brokers);
	free(producer_properties);
	free(producer_secrets_file);
	producer_brokers = strdup(outbox_brokers);
	producer_properties = strdup(outbox_kafka_properties);
	producer_secrets_file = strdup(outbox_kafka_secrets_file);
	strlcpy(producer_secrets_stamp, secrets_file_stamp(), sizeof(producer_secrets_stamp));
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
		 strcmp(producer_properties, outbox_kafka_properties) != 0 ||
		 strcmp(producer_secrets_file, outbox_kafka_secrets_file) != 0 ||
		 strcmp(producer_secrets_stamp, secrets_file_stamp()) != 0))
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

/*
 * True if the extension exists. A dropped or re-created extension has new
 * tables, so everything cached about the old ones is forgotten.
 */
static bool
extension_ready(void)
{
	static Oid	known_extension = InvalidOid;
	Oid			ext = get_extension_oid("edu_outbox", true);

	if (ext != known_extension)
	{
		outbox_batch_reset(&batch);
		outbox_cleanup_forget();
		outbox_dead_letters_forget();
		known_extension = ext;
	}
	return OidIsValid(ext);
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

#define CHUNK_NO_EXTENSION (-1)
#define CHUNK_PAUSED (-2)

/*
 * Records progress (and the dead letters it moved past), opens a batch if
 * needed and reads the next chunk. Returns the number of events read, or
 * CHUNK_NO_EXTENSION / CHUNK_PAUSED.
 */
static int
read_chunk(OutboxEvent **events)
{
	int			n = 0;

	begin_cycle_xact("edu_outbox: reading outbox");
	if (!extension_ready())
	{
		end_cycle_xact();
		return CHUNK_NO_EXTENSION;
	}
	if (!batch.loaded)
	{
		outbox_dead_letters_forget();
		outbox_batch_load(&batch);
	}
	if (batch.dirty)
	{
		outbox_dead_letters_flush();
		outbox_batch_persist(&batch);
	}
	outbox_cleanup(batch.delivered_snapshot);
	if (outbox_relay_paused())
	{
		end_cycle_xact();
		return CHUNK_PAUSED;
	}
	outbox_dead_letters_refresh();
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
	if (h.brokers_down && !brokers_down_logged && relay_error_is_authentication(h.last_error))
	{
		ereport(LOG,
				(errmsg("edu_outbox relay cannot authenticate to Kafka"),
				 errdetail_internal("Brokers: %s. Error: %s", producer_brokers, h.auth_error_text),
				 errhint("Check the SASL/TLS settings in \"%s\" and the credentials in \"%s\", then reload; events stay in the outbox meanwhile.",
						 "edu_outbox.kafka_properties", "edu_outbox.kafka_secrets_file")));
		outbox_status_set(NULL, "authentication failed");
		brokers_down_logged = true;
	}
	else if (h.brokers_down && !brokers_down_logged)
	{
		ereport(LOG,
				(errmsg("edu_outbox relay cannot reach any Kafka broker"),
				 errdetail_internal("Brokers: %s. Last error: %s", producer_brokers, h.last_error_text),
				 errhint("Events stay in the outbox and are sent once a broker is reachable.")));
		outbox_status_set(NULL, "brokers down");
		brokers_down_logged = true;
	}
	else if (!h.brokers_down)
		brokers_down_logged = false;
}

/* Sends records and waits for their delivery reports (bounded at shutdown). */
static void
send_and_wait(const RelayRecord *records, int n, RelayBatch *rb)
{
	RelayOutcome *outcome = MemoryContextAlloc(chunk_cxt, sizeof(RelayOutcome) * Max(n, 1));
	int		   *error = MemoryContextAlloc(chunk_cxt, sizeof(int) * Max(n, 1));
	TimestampTz shutdown_at = 0;

	relay_batch_init(rb, n, outcome, error);
	if (n == 0)
		return;
	pgstat_report_activity(STATE_RUNNING, psprintf("edu_outbox: sending %d events", n));
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
}

/*
 * Builds the records to send, leaving out events held back behind a dead
 * letter; sent[i] is the record index of event i, or -1.
 */
static int
prepare_records(const OutboxEvent *events, int n, RelayRecord **records_out, int **sent_out)
{
	RelayRecord *records = MemoryContextAlloc(chunk_cxt, sizeof(RelayRecord) * Max(n, 1));
	int		   *sent = MemoryContextAlloc(chunk_cxt, sizeof(int) * Max(n, 1));
	int			m = 0;

	for (int i = 0; i < n; i++)
	{
		if (outbox_dead_letter_mode == DEAD_LETTER_PARK_KEY &&
			outbox_dead_letter_head_for(events[i].topic, events[i].key) != 0)
		{
			sent[i] = -1;
			continue;
		}
		sent[i] = m;
		records[m].id = events[i].id;
		records[m].topic = events[i].topic;
		records[m].key = events[i].key;
		records[m].key_len = events[i].key_len;
		records[m].value = events[i].payload;
		records[m].value_len = events[i].payload_len;
		records[m].headers_json = events[i].headers;
		records[m].timestamp_ms = events[i].timestamp_ms;
		m++;
	}
	*records_out = records;
	*sent_out = sent;
	return m;
}

/*
 * How many leading events are done with: delivered, dead-lettered because
 * Kafka refused them for good, or parked behind such an event. Queues the
 * dead letters; they are written with the next position.
 */
static int
handled_prefix(const OutboxEvent *events, int n, const int *sent, const RelayBatch *rb)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		const OutboxEvent *e = &events[i];
		int			r = sent[i];
		uint64		xid = batch.txns[e->txn_index].xid;
		int64		head;
		int			err;

		if (r >= 0 && rb->outcome[r] == RELAY_DELIVERED)
			continue;

		head = outbox_dead_letter_mode == DEAD_LETTER_PARK_KEY ?
			outbox_dead_letter_head_for(e->topic, e->key) : 0;
		if (head != 0)
		{
			outbox_dead_letter_note(e->id, xid, e->topic, e->key,
									psprintf("held back behind dead letter " INT64_FORMAT, head),
									head);
			continue;
		}
		err = r >= 0 ? rb->error[r] : 0;
		if (r < 0 || rb->outcome[r] != RELAY_FAILED ||
			outbox_dead_letter_mode == DEAD_LETTER_RETRY || !relay_error_is_permanent(err))
			break;
		ereport(WARNING,
				(errmsg("edu_outbox relay moved event " INT64_FORMAT " to the dead-letter table", e->id),
				 errdetail("Kafka refused it for good on topic \"%s\": %s.", e->topic,
						   relay_error_text(err)),
				 errhint("Inspect it in outbox_dead_letters, then call outbox_retry_dead_letter(" INT64_FORMAT ") or outbox_discard_dead_letter(" INT64_FORMAT ").",
						 e->id, e->id)));
		outbox_dead_letter_note(e->id, xid, e->topic, e->key, relay_error_text(err), 0);
	}
	return i;
}

/* Feeds the per-topic delivery counters of outbox_status(). */
static void
count_deliveries(const OutboxEvent *events, int n, const int *sent, const RelayBatch *rb)
{
	const char *topics[OUTBOX_MAX_TOPIC_STATS];
	int			counts[OUTBOX_MAX_TOPIC_STATS];
	int			ntopics = 0;

	for (int i = 0; i < n; i++)
	{
		int			t;

		if (sent[i] < 0 || rb->outcome[sent[i]] != RELAY_DELIVERED)
			continue;
		for (t = 0; t < ntopics; t++)
			if (strcmp(topics[t], events[i].topic) == 0)
				break;
		if (t == ntopics)
		{
			if (ntopics == OUTBOX_MAX_TOPIC_STATS)
			{
				outbox_status_delivered(topics, counts, ntopics);
				ntopics = 0;
				t = 0;
			}
			topics[t] = events[i].topic;
			counts[t] = 0;
			ntopics++;
		}
		counts[t]++;
	}
	outbox_status_delivered(topics, counts, ntopics);
}

static CycleResult
relay_cycle(void)
{
	OutboxEvent *events = NULL;
	RelayRecord *records;
	int		   *sent;
	RelayBatch	rb;
	RelayHealth h;
	int			n,
				m,
				handled;
	const char *stuck;

	MemoryContextReset(chunk_cxt);
	n = read_chunk(&events);
	if (n == CHUNK_NO_EXTENSION)
		return CYCLE_NO_EXTENSION;
	if (n == CHUNK_PAUSED)
		return CYCLE_PAUSED;
	if (n == 0)
		return CYCLE_IDLE;

	m = prepare_records(events, n, &records, &sent);
	send_and_wait(records, m, &rb);
	handled = handled_prefix(events, n, sent, &rb);
	count_deliveries(events, n, sent, &rb);
	outbox_batch_advance(&batch, events, handled);
	if (producer_stale)
	{
		replace_stale_producer();
		return CYCLE_PROGRESS;
	}
	relay_producer_health(producer, &h);
	outbox_status_set(NULL, h.fatal ? "fatal error" : h.brokers_down ? "brokers down" : "connected");
	if (handled == n)
	{
		if (relay_state == RELAY_FAILING)
			ereport(LOG, (errmsg("edu_outbox relay is delivering to Kafka again")));
		enter_state(RELAY_DELIVERING);
		return CYCLE_PROGRESS;
	}

	/* the stuck event's own error: an earlier one in the chunk may have been dead-lettered */
	stuck = sent[handled] >= 0 && rb.outcome[sent[handled]] == RELAY_FAILED ?
		relay_error_text(rb.error[sent[handled]]) : "no delivery report yet";
	if (relay_state != RELAY_FAILING)
		ereport(LOG,
				(errmsg("edu_outbox relay could not deliver event " INT64_FORMAT " to Kafka topic \"%s\"",
						events[handled].id, events[handled].topic),
				 errdetail_internal("%s%s%s", stuck,
									h.fatal ? "; producer error: " : "",
									h.fatal ? h.last_error_text : ""),
				 errhint("The event and everything after it stay in the outbox and are sent again with backoff.")));
	outbox_status_error(psprintf("event " INT64_FORMAT ": %s%s%s", events[handled].id, stuck,
								 h.fatal ? "; " : "", h.fatal ? h.last_error_text : ""));
	enter_state(RELAY_FAILING);
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

	/*
	 * The relay's own commits (its position, dead letters) need not wait for
	 * the WAL flush: losing the last ones in a crash only means sending some
	 * events again, which at-least-once delivery allows.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
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
			case CYCLE_PAUSED:
				if (relay_state != RELAY_PAUSED)
					ereport(LOG, (errmsg("edu_outbox relay is paused"),
								  errhint("SELECT outbox_resume() resumes delivery.")));
				enter_state(RELAY_PAUSED);
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_IDLE:
				backoff_ms = 0;
				if (relay_state == RELAY_PAUSED)
					ereport(LOG, (errmsg("edu_outbox relay resumed")));
				if (relay_state != RELAY_FAILING)
					enter_state(RELAY_DELIVERING);
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_NO_EXTENSION:
				if (relay_state != RELAY_WAITING_FOR_EXTENSION)
					ereport(LOG,
							(errmsg("edu_outbox relay is waiting for the extension to be created"),
							 errhint("Run CREATE EXTENSION edu_outbox in database \"%s\".",
									 outbox_database)));
				enter_state(RELAY_WAITING_FOR_EXTENSION);
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
