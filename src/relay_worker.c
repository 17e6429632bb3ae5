/*
 * relay_worker.c: the background worker that relays committed outbox rows
 * to Kafka.
 *
 * A cycle is read -> send -> decide -> persist. read is one transaction
 * that records how far the previous chunk got, opens a batch if needed and
 * reads the next chunk; send hands it to the producer outside any
 * transaction and waits for the broker's acknowledgements; decide
 * (relay/decide.c) says what the reports mean; persist applies that, and the
 * next read writes it. Only the handled prefix counts: the rest is read and
 * sent again, so delivery is at least once and in order. Everything a cycle
 * allocates lives in cycle_cxt, reset at the start of the next one.
 */
#include "postgres.h"

#include <sys/stat.h>

#include "access/commit_ts.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
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
#include "coalesce.h"
#include "dead_letter.h"
#include "durability.h"
#include "exactly_once.h"
#include "relay_control.h"
#include "relay_worker.h"
#include "settings.h"
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
	CYCLE_FENCED,				/* another relay took over our transactional.id */
	CYCLE_NO_EXTENSION,			/* extension not (yet) created */
	CYCLE_OUTDATED				/* extension older than this library: not yet updated */
} CycleResult;

/* What the log last said, so each change is logged once rather than per retry. */
typedef enum RelayState
{
	RELAY_STARTING,
	RELAY_WAITING_FOR_EXTENSION,
	RELAY_BAD_CONFIG,
	RELAY_DELIVERING,
	RELAY_PAUSED,
	RELAY_FAILING,
	RELAY_STALLED,
	RELAY_FENCED,
	RELAY_WAITING_FOR_UPDATE
} RelayState;

/* Kafka silent this long (ms): ask whether any broker answers; the question waits at most the timeout. */
#define BROKER_PROBE_MS 5000
#define BROKER_PROBE_TIMEOUT_MS 2000

static const char *const state_names[] = {
	"starting", "waiting for extension", "bad configuration", "delivering",
	"paused", "failing", "stalled", "fenced", "waiting for extension update"
};

static RelayState relay_state = RELAY_STARTING;
static RelayProducer *producer = NULL;
static char *producer_brokers = NULL;	/* configuration the producer was built from */
static char *producer_properties = NULL;
static char *producer_secrets_file = NULL;
static char producer_secrets_stamp[64] = "";
static int	producer_delivery = OUTBOX_DELIVERY_AT_LEAST_ONCE;
static char *producer_txn_id = NULL;	/* exactly_once: the transactional.id in use */
static char *producer_position_topic = NULL;
static bool relay_fenced = false;	/* sends nothing until a reload */
static bool dead_letters_ahead = true;	/* exactly_once: dead letters may lie past the position */
static OutboxBatch batch;
static MemoryContext cycle_cxt = NULL;	/* reset at the start of every cycle */
static TimestampTz progress_at = 0;	/* last time the position moved or nothing was pending */
static bool brokers_down_logged = false;
static bool producer_stale = false;
static char *relay_dbname = NULL;	/* the database this worker relays */
static bool relay_needs_extension = false;	/* '*' mode: stop when the extension is gone */

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
	outbox_eos_forget();
	outbox_status_set(NULL, "none");
}

static bool
exactly_once(void)
{
	return producer_delivery == OUTBOX_DELIVERY_EXACTLY_ONCE;
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
	char	   *txn_id = NULL;

	if (producer)
		return true;
	if (outbox_delivery == OUTBOX_DELIVERY_EXACTLY_ONCE)
		txn_id = outbox_eos_transactional_id(relay_dbname);
	producer = relay_producer_create(outbox_brokers, outbox_kafka_properties,
									 outbox_kafka_secrets_file, txn_id, errbuf, sizeof(errbuf));
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
	free(producer_txn_id);
	free(producer_position_topic);
	producer_brokers = strdup(outbox_brokers);
	producer_properties = strdup(outbox_kafka_properties);
	producer_secrets_file = strdup(outbox_kafka_secrets_file);
	producer_txn_id = strdup(txn_id ? txn_id : "");
	producer_position_topic = strdup(outbox_position_topic);
	producer_delivery = outbox_delivery;
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
		 strcmp(producer_secrets_stamp, secrets_file_stamp()) != 0 ||
		 producer_delivery != outbox_delivery ||
		 strcmp(producer_position_topic, outbox_position_topic) != 0 ||
		 (exactly_once() &&
		  strcmp(producer_txn_id, outbox_eos_transactional_id(relay_dbname)) != 0)))
		producer_stale = true;
	/* a fenced relay tries again only when told to */
	if (relay_fenced)
	{
		relay_fenced = false;
		ereport(LOG, (errmsg("edu_outbox relay tries its Kafka transactional.id again after a reload")));
	}
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

typedef enum ExtensionReadiness
{
	EXTENSION_ABSENT,
	EXTENSION_OUTDATED,			/* created at an older version, not yet updated */
	EXTENSION_READY
} ExtensionReadiness;

/*
 * Whether the extension exists in a version whose tables this library can
 * use. A dropped or re-created extension has new tables, so everything cached
 * about the old ones is forgotten. An outdated one is checked again every
 * cycle until ALTER EXTENSION ... UPDATE brings it up to date; an update
 * only moves forward, so a current one stays current.
 */
static ExtensionReadiness
extension_ready(void)
{
	static Oid	known_extension = InvalidOid;
	static bool known_current = false;
	Oid			ext = get_extension_oid("edu_outbox", true);

	if (ext != known_extension)
	{
		outbox_batch_reset(&batch);
		outbox_cleanup_forget();
		outbox_dead_letters_forget();
		known_extension = ext;
		known_current = false;
	}
	if (!OidIsValid(ext))
		return EXTENSION_ABSENT;
	if (!known_current)
		known_current = outbox_batch_schema_current();
	return known_current ? EXTENSION_READY : EXTENSION_OUTDATED;
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
	/* the commit leaves TopMemoryContext current: go back to the cycle's memory */
	MemoryContextSwitchTo(cycle_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * exactly_once: which events an earlier, aborted attempt at this chunk has
 * already made dead letters (see finish_transaction).
 */
static void
look_up_settled(OutboxEvent *events, int n)
{
	int64	   *ids = palloc(sizeof(int64) * n);
	bool	   *settled = palloc(sizeof(bool) * n);

	for (int i = 0; i < n; i++)
		ids[i] = events[i].id;
	outbox_dead_letters_lookup(ids, n, settled);
	for (int i = 0; i < n; i++)
		events[i].settled = settled[i];
	pfree(ids);
	pfree(settled);
}

#define CHUNK_NO_EXTENSION (-1)
#define CHUNK_PAUSED (-2)
#define CHUNK_OUTDATED (-3)

/*
 * read: records the previous chunk's outcome (position and dead letters),
 * opens a batch if needed and reads the next chunk. Returns the number of
 * events read, or CHUNK_NO_EXTENSION / CHUNK_OUTDATED / CHUNK_PAUSED.
 */
static int
read_chunk(OutboxEvent **events, int64 *skipped)
{
	int			n = 0;
	bool		was_open = batch.open;
	bool		paused;

	*skipped = 0;
	begin_cycle_xact("edu_outbox: reading outbox");
	switch (extension_ready())
	{
		case EXTENSION_ABSENT:
			end_cycle_xact();
			return CHUNK_NO_EXTENSION;
		case EXTENSION_OUTDATED:
			end_cycle_xact();
			return CHUNK_OUTDATED;
		case EXTENSION_READY:
			break;
	}
	if (!batch.loaded)
	{
		outbox_dead_letters_forget();
		outbox_batch_load(&batch);
		dead_letters_ahead = true;
	}
	if (exactly_once() && outbox_eos_reconcile(&batch))
		dead_letters_ahead = true;
	/* the position is written lazily (batch.h); cleanup truncates only what is written delivered */
	if (outbox_batch_persist_due(&batch))
	{
		outbox_dead_letters_flush();
		outbox_batch_persist(&batch);
	}
	if (!batch.dirty)
		outbox_cleanup(batch.delivered_snapshot);
	if (outbox_batch_begin(&batch, &paused))
	{
		/* a new (or reloaded) batch: its snapshot is taken, note how far WAL goes */
		if (!was_open)
			outbox_durability_mark();
		n = outbox_batch_fetch(&batch, outbox_chunk_max_events, outbox_chunk_max_bytes,
							   cycle_cxt, events, skipped);
		/* the parked keys matter only when there is something to send */
		if (n > 0)
			outbox_dead_letters_refresh();
		if (n > 0 && exactly_once() && dead_letters_ahead)
			look_up_settled(*events, n);
	}
	else if (paused)
		n = CHUNK_PAUSED;
	else if (outbox_batch_persist_due(&batch))
	{
		outbox_dead_letters_flush();
		outbox_batch_persist(&batch);
	}
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
	outbox_dead_letters_flush();
	outbox_batch_persist(&batch);
	end_cycle_xact();
}

/*
 * Kafka has been silent for a while (no delivery report, a commit or abort
 * not answered): find out whether any broker answers at all, at most every
 * BROKER_PROBE_MS, so an outage is logged and shown even when librdkafka
 * never reports all brokers down.
 */
static void
probe_brokers_if_silent(TimestampTz silent_since)
{
	static TimestampTz probed_at = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(silent_since, now, BROKER_PROBE_MS) ||
		!TimestampDifferenceExceeds(probed_at, now, BROKER_PROBE_MS))
		return;
	probed_at = now;
	(void) relay_producer_probe(producer, BROKER_PROBE_TIMEOUT_MS);
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

/*
 * Events went to Kafka: says once that delivery is back after a failure or a
 * pause (a resume into a backlog makes progress before any idle cycle).
 */
static void
enter_delivering(void)
{
	if (relay_state == RELAY_FAILING)
		ereport(LOG, (errmsg("edu_outbox relay is delivering to Kafka again")));
	else if (relay_state == RELAY_PAUSED)
		ereport(LOG, (errmsg("edu_outbox relay resumed")));
	enter_state(RELAY_DELIVERING);
}

/* The delivery position moved, or nothing is pending: not stalled. */
static void
note_progress(void)
{
	progress_at = GetCurrentTimestamp();
	if (relay_state == RELAY_STALLED)
	{
		ereport(LOG, (errmsg("edu_outbox relay is making progress again")));
		enter_state(RELAY_DELIVERING);
	}
}

/*
 * With work pending and no progress for edu_outbox.stall_timeout, status
 * says "stalled" and why, instead of "delivering" or "failing".
 */
static void
check_stall(const char *why)
{
	long		secs;
	int			usecs;
	char		msg[OUTBOX_STATUS_TEXT];

	if (relay_state == RELAY_STALLED ||
		!TimestampDifferenceExceeds(progress_at, GetCurrentTimestamp(), outbox_stall_timeout_ms))
		return;
	TimestampDifference(progress_at, GetCurrentTimestamp(), &secs, &usecs);
	snprintf(msg, sizeof(msg), "stalled: no delivery progress for %ld s with events pending: %s",
			 secs, why);
	ereport(LOG,
			(errmsg("edu_outbox relay made no progress for %ld seconds with events pending", secs),
			 errdetail_internal("%s", why),
			 errhint("See outbox_status() and the earlier log lines for the cause.")));
	enter_state(RELAY_STALLED);
	outbox_status_error(msg);
}

/* Why the chunk in flight is not done yet, for check_stall(). */
static const char *
waiting_reason(void)
{
	static char why[RELAY_ERRLEN + 64];
	RelayHealth h;

	relay_producer_health(producer, &h);
	if (h.brokers_down)
		snprintf(why, sizeof(why), "no Kafka broker reachable (%s)", h.last_error_text);
	else
		snprintf(why, sizeof(why), "waiting for acknowledgements from Kafka%s%s",
				 h.last_error_text[0] ? "; last error: " : "", h.last_error_text);
	return why;
}

/*
 * send: hands the records to the producer and waits for their delivery
 * reports (bounded at shutdown). The chunk returned belongs to the producer.
 */
static RelayChunk *
send_chunk(RelayRecord *records, int n)
{
	RelayChunk *chunk = relay_chunk_begin(producer, n);
	TimestampTz shutdown_at = 0;
	TimestampTz silent_since = GetCurrentTimestamp();
	int			reported = 0;

	if (chunk == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (n == 0)
		return chunk;
	pgstat_report_activity(STATE_RUNNING, psprintf("edu_outbox: sending %d events", n));
	relay_chunk_send(producer, chunk, records);

	for (;;)
	{
		RelayHealth h;

		relay_producer_poll(producer, 50);
		relay_producer_health(producer, &h);
		if (relay_chunk_settled(chunk) || h.fatal)
			break;
		if (chunk->nreported != reported)
		{
			reported = chunk->nreported;
			silent_since = GetCurrentTimestamp();
		}
		else
			probe_brokers_if_silent(silent_since);
		log_broker_health();
		check_stall(waiting_reason());
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
	return chunk;
}

/*
 * Builds the records to send and the events as the decision sees them,
 * leaving out events parked behind a dead letter. Payloads move from the
 * events to the records (the producer takes them over).
 */
static int
prepare_chunk(OutboxEvent *events, int n, RelayRecord *records, DecideEvent *devents)
{
	int			nheads;
	const DecideHead *heads = outbox_dead_letter_heads(&nheads);
	int			m = 0;

	for (int i = 0; i < n; i++)
	{
		OutboxEvent *e = &events[i];

		devents[i].id = e->id;
		devents[i].txn_index = e->txn_index;
		devents[i].topic = e->topic;
		devents[i].key = e->key;
		devents[i].key_len = e->key_len;
		devents[i].record = -1;
		if (e->settled)
		{
			devents[i].record = DECIDE_RECORD_SETTLED;
			continue;
		}
		if (relay_decide_parked_behind(outbox_dead_letter_mode, heads, nheads,
									   e->topic, e->key, e->key_len) != 0)
			continue;
		devents[i].record = m;
		records[m].id = e->id;
		records[m].topic = e->topic;
		records[m].key = e->key;
		records[m].key_len = e->key_len;
		records[m].value = e->payload;
		records[m].value_len = e->payload_len;
		records[m].headers_json = e->headers;
		records[m].timestamp_ms = e->timestamp_ms;
		e->payload = NULL;
		m++;
	}
	return m;
}

/* Frees the payloads the producer did not take over. */
static void
free_payloads(OutboxEvent *events, int n, RelayRecord *records, int m)
{
	for (int i = 0; i < n; i++)
		free(events[i].payload);
	for (int i = 0; i < m; i++)
		free(records[i].value);
}

/*
 * Whether brokers keep saying that topic does not exist, for the whole
 * refused-topic wait. A topic being created (e.g. the first event of a new
 * topic, right after a broker outage) shows up within it; a topic Kafka
 * refuses (auto-creation off, a name colliding on '.'/'_') never does.
 */
static bool
topic_refused(const char *topic)
{
	TimestampTz start = GetCurrentTimestamp();

	for (;;)
	{
		if (relay_producer_topic_known(producer, topic, 1000) != 0)
			return false;		/* exists, being created, or no broker answered */
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), RELAY_REFUSED_TOPIC_WAIT_MS))
			return true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 500, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (ShutdownRequestPending)
			return false;
	}
}

/*
 * An event that failed as "unknown topic" is poison only if its topic is
 * refused (topic_refused); otherwise it is sent again like any transient
 * failure. At most a few topics are asked about per chunk, so the wait stays
 * bounded; the others are asked about on the next attempt.
 */
#define REFUSED_TOPIC_CHECKS_PER_CHUNK 4

static void
confirm_refused_topics(RelayChunk *chunk, const RelayRecord *records)
{
	const char *asked[REFUSED_TOPIC_CHECKS_PER_CHUNK];
	bool		refused[REFUSED_TOPIC_CHECKS_PER_CHUNK];
	int			nasked = 0;

	for (int r = 0; r < chunk->nsent; r++)
	{
		int			a;

		if (chunk->outcome[r] != RELAY_FAILED || !relay_error_is_unknown_topic(chunk->error[r]))
			continue;
		for (a = 0; a < nasked; a++)
			if (strcmp(asked[a], records[r].topic) == 0)
				break;
		if (a == nasked)
		{
			if (nasked == REFUSED_TOPIC_CHECKS_PER_CHUNK)
				continue;
			asked[a] = records[r].topic;
			refused[a] = topic_refused(records[r].topic);
			nasked++;
		}
		if (refused[a])
			chunk->error[r] = RELAY_ERR_TOPIC_REFUSED;
	}
}

/* Queues the dead letters and parked events of the handled prefix. */
static void
note_dead_letters(const OutboxEvent *events, const DecideOutput *out, const RelayChunk *chunk,
				  const DecideEvent *devents)
{
	for (int i = 0; i < out->handled; i++)
	{
		const OutboxEvent *e = &events[i];
		uint64		xid = batch.txn_xids[e->txn_index];

		if (out->verdict[i] == VERDICT_PARKED)
			outbox_dead_letter_note(e->id, xid, e->topic, e->key, e->key_len,
									psprintf("held back behind dead letter " INT64_FORMAT,
											 out->parked_behind[i]),
									out->parked_behind[i]);
		else if (out->verdict[i] == VERDICT_DEAD_LETTER)
		{
			const char *why = relay_error_text(chunk->error[devents[i].record]);

			ereport(WARNING,
					(errmsg("edu_outbox relay moved event " INT64_FORMAT " to the dead-letter table", e->id),
					 errdetail("Kafka refused it for good on topic \"%s\": %s.", e->topic, why),
					 errhint("Inspect it in outbox_dead_letters, then call outbox_retry_dead_letter(" INT64_FORMAT ") or outbox_discard_dead_letter(" INT64_FORMAT ").",
							 e->id, e->id)));
			outbox_dead_letter_note(e->id, xid, e->topic, e->key, e->key_len, why, 0);
		}
	}
}

static bool
has_verdict(const DecideOutput *out, DecideVerdict v)
{
	for (int i = 0; i < out->handled; i++)
		if (out->verdict[i] == v)
			return true;
	return false;
}

/*
 * persist: applies the decision. The position and the dead letters are
 * written with the next cycle's read, in one transaction.
 */
static void
apply_decision(const OutboxEvent *events, const DecideOutput *out, const RelayChunk *chunk,
			   const DecideEvent *devents)
{
	note_dead_letters(events, out, chunk, devents);
	outbox_status_delivered(out->topics, out->delivered, out->ntopics);
	outbox_batch_move(&batch, out->position.txn_index, out->position.done,
					  out->position.last_id);
}

/*
 * exactly_once: a transaction call failed. Fenced: another relay with the
 * same transactional.id took over, and this one stops sending until a
 * reload. Fatal: the producer is replaced. Otherwise (aborted, timed out)
 * the chunk is sent again from the last committed position.
 */
static void
transaction_failed(RelayTxnResult r, const char *what, const char *errbuf)
{
	if (r == RELAY_TXN_FENCED)
	{
		ereport(LOG,
				(errmsg("edu_outbox relay was fenced: another relay uses Kafka transactional.id \"%s\"",
						producer_txn_id),
				 errdetail_internal("%s", errbuf),
				 errhint("Only one relay may use a transactional.id. This one sends nothing until the configuration is reloaded; check \"%s\".",
						 "edu_outbox.transactional_id")));
		enter_state(RELAY_FENCED);
		outbox_status_error(psprintf("fenced: another relay uses transactional.id \"%s\"",
									 producer_txn_id));
		relay_fenced = true;
		drop_producer();
		return;
	}
	if (relay_state != RELAY_FAILING && relay_state != RELAY_STALLED)
		ereport(LOG,
				(errmsg("edu_outbox relay could not %s a Kafka transaction", what),
				 errdetail_internal("%s", errbuf),
				 strcmp(what, "initialize") == 0 ?
				 errhint("The relay tries again. A transaction that holds back the position topic for longer than transaction.timeout.ms is a hanging one: see kafka-transactions.sh find-hanging.") :
				 errhint("Nothing of it is visible to read_committed consumers; the events are sent again from the last committed position.")));
	if (relay_state != RELAY_STALLED)
	{
		outbox_status_error(psprintf("Kafka transaction %s: %s", what, errbuf));
		enter_state(RELAY_FAILING);
	}
	check_stall(psprintf("Kafka transaction %s: %s", what, errbuf));
	if (r == RELAY_TXN_FATAL)
		drop_producer();
}

/*
 * The chunk did not get through: logs (once per failing spell) the first
 * event not handled and why, and drops a producer librdkafka gave up on.
 */
static CycleResult
report_stuck(const OutboxEvent *events, const DecideOutput *out, const RelayChunk *chunk,
			 const DecideEvent *devents)
{
	RelayHealth h;
	const char *stuck;
	const OutboxEvent *se;

	relay_producer_health(producer, &h);
	/* the stuck event's own error: an earlier one in the chunk may have been dead-lettered */
	se = &events[out->stuck];
	stuck = devents[out->stuck].record >= 0 &&
		chunk->outcome[devents[out->stuck].record] == RELAY_FAILED ?
		relay_error_text(chunk->error[devents[out->stuck].record]) : "no delivery report yet";
	if (relay_state != RELAY_FAILING && relay_state != RELAY_STALLED)
		ereport(LOG,
				(errmsg("edu_outbox relay could not deliver event " INT64_FORMAT " to Kafka topic \"%s\"",
						se->id, se->topic),
				 errdetail_internal("%s%s%s", stuck,
									h.fatal ? "; producer error: " : "",
									h.fatal ? h.last_error_text : ""),
				 errhint("The event and everything after it stay in the outbox and are sent again with backoff.")));
	if (relay_state != RELAY_STALLED)
	{
		outbox_status_error(psprintf("event " INT64_FORMAT ": %s%s%s", se->id, stuck,
									 h.fatal ? "; " : "", h.fatal ? h.last_error_text : ""));
		enter_state(RELAY_FAILING);
	}
	check_stall(psprintf("event " INT64_FORMAT " on topic \"%s\": %s", se->id, se->topic, stuck));
	/* librdkafka cannot recover from a fatal error: start a new producer, resend from the gap */
	if (h.fatal)
		drop_producer();
	return CYCLE_FAILED;
}

/*
 * exactly_once: the chunk's commit or abort is still waiting for Kafka. A
 * broker outage can last the whole wait: log it, say so in the status and
 * report a stall, as send_chunk does while it waits for acknowledgements.
 * The chunk's delivery reports may arrive here too (purged by the abort);
 * they change only outcomes still pending.
 */
static void
txn_waiting(void)
{
	/* a blocked commit or abort serves no callbacks: let error_cb report the brokers */
	relay_producer_poll(producer, 0);
	/* called after a call that waited EOS_CALL_TIMEOUT_MS for Kafka in vain */
	probe_brokers_if_silent(0);
	log_broker_health();
	check_stall(waiting_reason());
}

/*
 * exactly_once: starts the chunk's Kafka transaction. False if it cannot
 * (logged; the producer is dropped if it is of no use any more).
 */
static bool
begin_transaction(void)
{
	char		errbuf[RELAY_ERRLEN];
	RelayTxnResult r = RELAY_TXN_OK;

	/* an abort cut short by a shutdown request must end before anything else */
	if (relay_txn_abort_pending(producer))
		r = outbox_eos_abort(producer, txn_waiting, errbuf, sizeof(errbuf));
	if (r == RELAY_TXN_OK)
		r = relay_txn_begin(producer, errbuf, sizeof(errbuf));
	if (r == RELAY_TXN_OK)
		return true;
	transaction_failed(r, "begin", errbuf);
	return false;
}

/*
 * exactly_once: writes queued dead letters and makes them durable (and
 * replicated, see durability.h) before any Kafka position passes them, so
 * a crash cannot leave an event neither in Kafka nor in the dead-letter table.
 */
static void
persist_dead_letters_now(void)
{
	begin_cycle_xact("edu_outbox: recording dead letters");
	outbox_dead_letters_flush();
	end_cycle_xact();
	outbox_durability_mark();
	(void) outbox_durability_wait(reload_settings);
	dead_letters_ahead = true;
}

/*
 * exactly_once: commits the chunk's transaction with the position after it
 * if every event was handled without a dead letter, else aborts it: then
 * nothing of it is visible to read_committed readers, and its dead letters
 * (if any) are recorded before the chunk is sent again without them.
 */
static CycleResult
finish_transaction(const OutboxEvent *events, int n, const DecideOutput *out,
				   const RelayChunk *chunk, const DecideEvent *devents)
{
	char		errbuf[RELAY_ERRLEN];
	RelayTxnResult r;
	int64		seq;

	if (out->handled < n || has_verdict(out, VERDICT_DEAD_LETTER) || producer_stale)
	{
		bool		dead = has_verdict(out, VERDICT_DEAD_LETTER) || has_verdict(out, VERDICT_PARKED);

		r = outbox_eos_abort(producer, txn_waiting, errbuf, sizeof(errbuf));
		if (r == RELAY_TXN_RETRY)
			return CYCLE_PROGRESS;	/* shutting down: the next start's init ends it */
		if (r != RELAY_TXN_OK)
			transaction_failed(r, "abort", errbuf);
		if (dead)
		{
			note_dead_letters(events, out, chunk, devents);
			persist_dead_letters_now();
			note_progress();
		}
		if (producer == NULL)
			return relay_fenced ? CYCLE_FENCED : CYCLE_FAILED;
		if (dead)
			return CYCLE_PROGRESS;	/* at once, without them */
		if (out->handled < n)
			return report_stuck(events, out, chunk, devents);
		return CYCLE_PROGRESS;	/* reconnecting or shutting down */
	}

	/* parked events are recorded before the position passes them, like dead letters */
	if (has_verdict(out, VERDICT_PARKED))
	{
		note_dead_letters(events, out, chunk, devents);
		persist_dead_letters_now();
	}
	r = outbox_eos_commit(producer, producer_txn_id, &batch, out->position, txn_waiting,
						  &seq, errbuf, sizeof(errbuf));
	if (r != RELAY_TXN_OK)
	{
		transaction_failed(r, "commit", errbuf);
		return relay_fenced ? CYCLE_FENCED : CYCLE_FAILED;
	}
	apply_decision(events, out, chunk, devents);
	batch.position_seq = seq;
	batch.dirty = true;
	dead_letters_ahead = false;
	note_progress();
	outbox_status_set(NULL, "connected");
	enter_delivering();
	return CYCLE_PROGRESS;
}

/*
 * DEBUG2: where a chunk's time went (read includes the previous chunk's
 * position update, which shares its transaction, and the wait for the
 * chunk's WAL to be durable). For tuning and for the
 * benchmark's account of the drain rate.
 */
static void
log_chunk_times(int n, TimestampTz start, TimestampTz read_at, TimestampTz sent_at)
{
	TimestampTz now;

	if (!message_level_is_interesting(DEBUG2))
		return;
	now = GetCurrentTimestamp();
	elog(DEBUG2, "edu_outbox relay chunk of %d events: read %.3f ms, send and acknowledgements %.3f ms, decide and commit %.3f ms",
		 n, (read_at - start) / 1000.0, (sent_at - read_at) / 1000.0, (now - sent_at) / 1000.0);
}

/* read -> send -> decide -> persist, for one chunk. */
static CycleResult
relay_cycle(void)
{
	OutboxEvent *events = NULL;
	RelayRecord *records;
	DecideEvent *devents;
	RelayChunk *chunk;
	DecideInput in;
	DecideOutput out;
	RelayHealth h;
	int64		skipped;
	int			n,
				m;
	TimestampTz start = GetCurrentTimestamp(),
				read_at,
				sent_at;

	n = read_chunk(&events, &skipped);
	if (n == CHUNK_NO_EXTENSION)
		return CYCLE_NO_EXTENSION;
	if (n == CHUNK_OUTDATED)
		return CYCLE_OUTDATED;
	if (n == CHUNK_PAUSED)
		return CYCLE_PAUSED;
	if (n == 0 && skipped > 0)
	{
		/* every listed row was gone: move past those transactions */
		DecidePosition pos = {batch.pos_index, batch.pos_done, batch.pos_last_id};

		pos = relay_position_skip_done(pos, batch.txn_rows, batch.ntxns);
		outbox_batch_move(&batch, pos.txn_index, pos.done, pos.last_id);
		note_progress();
		return CYCLE_PROGRESS;
	}
	if (n == 0)
		return CYCLE_IDLE;

	/* never send what a crash or a failover could still take back */
	if (!outbox_durability_wait(reload_settings))
		return CYCLE_PROGRESS;	/* shutting down: the loop ends, nothing sent */
	read_at = GetCurrentTimestamp();
	records = palloc(sizeof(RelayRecord) * n);
	devents = palloc(sizeof(DecideEvent) * n);
	m = prepare_chunk(events, n, records, devents);
	if (exactly_once() && !begin_transaction())
	{
		free_payloads(events, n, records, m);
		return relay_fenced ? CYCLE_FENCED : CYCLE_FAILED;
	}
	chunk = send_chunk(records, m);
	sent_at = GetCurrentTimestamp();
	confirm_refused_topics(chunk, records);
	free_payloads(events, n, records, m);

	in.events = devents;
	in.nevents = n;
	in.outcome = chunk->outcome;
	in.error = chunk->error;
	in.mode = outbox_dead_letter_mode;
	in.heads = outbox_dead_letter_heads(&in.nheads);
	in.position.txn_index = batch.pos_index;
	in.position.done = batch.pos_done;
	in.position.last_id = batch.pos_last_id;
	in.txn_rows = batch.txn_rows;
	in.ntxns = batch.ntxns;
	out.verdict = palloc(sizeof(DecideVerdict) * n);
	out.parked_behind = palloc(sizeof(int64) * n);
	out.topics = palloc(sizeof(char *) * n);
	out.delivered = palloc(sizeof(int) * n);
	relay_decide(&in, &out);
	if (exactly_once())
	{
		CycleResult result = finish_transaction(events, n, &out, chunk, devents);

		log_chunk_times(n, start, read_at, sent_at);
		if (producer_stale)
			replace_stale_producer();
		return result;
	}

	apply_decision(events, &out, chunk, devents);
	if (out.handled > 0 || skipped > 0)
		note_progress();
	log_chunk_times(n, start, read_at, sent_at);

	if (producer_stale)
	{
		replace_stale_producer();
		return CYCLE_PROGRESS;
	}
	relay_producer_health(producer, &h);
	outbox_status_set(NULL, h.fatal ? "fatal error" : h.brokers_down ? "brokers down" : "connected");
	if (out.handled == n)
	{
		enter_delivering();
		return CYCLE_PROGRESS;
	}

	return report_stuck(events, &out, chunk, devents);
}

/*
 * exactly_once: a new producer first initializes its transactions and reads
 * the position committed to Kafka (outbox_eos_start). False if that has to
 * wait (logged).
 */
static bool
ensure_transactions(void)
{
	char		errbuf[RELAY_ERRLEN];
	RelayTxnResult r;

	if (outbox_eos_ready())
		return true;
	outbox_status_set(NULL, "initializing transactions");
	r = outbox_eos_start(producer, producer_txn_id, errbuf, sizeof(errbuf));
	if (r == RELAY_TXN_OK)
	{
		outbox_status_set(NULL, "connected");
		return true;
	}
	transaction_failed(r, "initialize", errbuf);
	return false;
}

/* Looks up the database's name and whether it has the extension, in a short transaction. */
static bool
look_at_database(void)
{
	bool		has_extension;

	StartTransactionCommand();
	relay_dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	has_extension = OidIsValid(get_extension_oid("edu_outbox", true));
	CommitTransactionCommand();
	return has_extension;
}

/*
 * Entry point of the relay worker of one database. The launcher passes the
 * number of the shared-memory slot it assigned to the database.
 */
void
outbox_relay_main(Datum main_arg)
{
	int			backoff_ms = 0;
	int			slotno = DatumGetInt32(main_arg);
	const char *stop_reason = NULL;
	OutboxSlot *slot;
	Oid			dboid;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	if (outbox_shared == NULL || slotno < 0 || slotno >= outbox_shared->nslots)
		proc_exit(0);
	slot = &outbox_shared->slots[slotno];
	SpinLockAcquire(&slot->mutex);
	dboid = slot->dboid;
	relay_needs_extension = slot->needs_extension;
	SpinLockRelease(&slot->mutex);
	if (!OidIsValid(dboid))
		proc_exit(0);			/* the launcher took the slot back meanwhile */

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/*
	 * The relay's own commits (its position, dead letters) need not wait for
	 * the WAL flush: losing the last ones in a crash only means sending some
	 * events again, which at-least-once delivery allows.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	outbox_worker_attach(slotno, MyLatch);
	before_shmem_exit(worker_detach, (Datum) 0);

	/* with '*', a database without the extension is not relayed: leave quietly */
	if (!look_at_database() && relay_needs_extension)
	{
		outbox_worker_set_exit_reason(OUTBOX_EXIT_NO_EXTENSION);
		proc_exit(0);
	}

	cycle_cxt = AllocSetContextCreate(TopMemoryContext, "edu_outbox cycle",
									  ALLOCSET_DEFAULT_SIZES);
	outbox_batch_reset(&batch);
	progress_at = GetCurrentTimestamp();

	ereport(LOG,
			(errmsg("edu_outbox relay started for database \"%s\"", relay_dbname),
			 errdetail_internal("Brokers: %s.", outbox_brokers)));
	if (!track_commit_timestamp)
		ereport(LOG,
				(errmsg("edu_outbox relay orders transactions that commit close together by first event id"),
				 errhint("Set track_commit_timestamp = on for exact commit order.")));

	while (!ShutdownRequestPending)
	{
		CycleResult result;
		long		timeout;
		int			rc;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(cycle_cxt);
		MemoryContextReset(cycle_cxt);
		if (ConfigReloadPending)
			reload_settings();
		replace_stale_producer();

		if (relay_fenced)
			result = CYCLE_FENCED;
		else if (!ensure_producer())
			result = CYCLE_FAILED;
		else if (exactly_once() && !ensure_transactions())
			result = relay_fenced ? CYCLE_FENCED : CYCLE_FAILED;
		else
			result = relay_cycle();

		switch (result)
		{
			case CYCLE_PROGRESS:
				backoff_ms = 0;
				if (batch.open)
					continue;	/* more of the batch is waiting: no sleep */
				/* the batch is delivered: whatever committed since set the latch */
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_PAUSED:
				progress_at = GetCurrentTimestamp();	/* deliberate, not a stall */
				if (relay_state != RELAY_PAUSED)
					ereport(LOG, (errmsg("edu_outbox relay is paused"),
								  errhint("SELECT outbox_resume() resumes delivery.")));
				enter_state(RELAY_PAUSED);
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_IDLE:
				backoff_ms = 0;
				note_progress();	/* nothing pending */
				if (relay_state == RELAY_PAUSED)
					ereport(LOG, (errmsg("edu_outbox relay resumed")));
				if (relay_state != RELAY_FAILING)
					enter_state(RELAY_DELIVERING);
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_FENCED:
				progress_at = GetCurrentTimestamp();	/* deliberate, not a stall */
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_NO_EXTENSION:
				progress_at = GetCurrentTimestamp();
				if (relay_needs_extension)
				{
					/* dropped: with '*' the database is no longer relayed */
					stop_reason = "The extension was dropped.";
					outbox_worker_set_exit_reason(OUTBOX_EXIT_NO_EXTENSION);
					goto stop;
				}
				if (relay_state != RELAY_WAITING_FOR_EXTENSION)
					ereport(LOG,
							(errmsg("edu_outbox relay is waiting for the extension to be created"),
							 errhint("Run CREATE EXTENSION edu_outbox in database \"%s\".",
									 relay_dbname)));
				enter_state(RELAY_WAITING_FOR_EXTENSION);
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_OUTDATED:
				progress_at = GetCurrentTimestamp();	/* deliberate, not a stall */
				if (relay_state != RELAY_WAITING_FOR_UPDATE)
					ereport(LOG,
							(errmsg("edu_outbox relay is waiting for the extension to be updated"),
							 errdetail("The extension in database \"%s\" was created at an older version than the loaded library.",
									   relay_dbname),
							 errhint("Run ALTER EXTENSION edu_outbox UPDATE in database \"%s\".",
									 relay_dbname)));
				enter_state(RELAY_WAITING_FOR_UPDATE);
				timeout = outbox_poll_interval_ms;
				break;
			case CYCLE_FAILED:
			default:
				backoff_ms = Min(BACKOFF_MAX_MS, Max(BACKOFF_MIN_MS, backoff_ms * 2));
				timeout = backoff_ms;
				break;
		}

		/* a moved position is written within OUTBOX_PERSIST_INTERVAL_MS even when idle */
		if (result != CYCLE_FAILED && outbox_batch_persist_wait_ms(&batch) >= 0)
			timeout = Min(timeout, outbox_batch_persist_wait_ms(&batch));
		if (result == CYCLE_PAUSED)
			outbox_status_set_paused(true);
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (result == CYCLE_PAUSED)
			outbox_status_set_paused(false);
		if ((rc & WL_LATCH_SET) && (result == CYCLE_IDLE || result == CYCLE_PROGRESS))
			outbox_coalesce_wakeups();
	}

	outbox_worker_set_exit_reason(OUTBOX_EXIT_SHUTDOWN);

stop:
	/* Final flush happened inside send_chunk; record what it achieved. */
	persist_progress();
	if (producer)
		drop_producer();
	ereport(LOG, (errmsg("edu_outbox relay shutting down for database \"%s\"", relay_dbname),
				  stop_reason ? errdetail("%s", stop_reason) : 0));
	proc_exit(0);
}
