/*
 * relay.h: the Kafka side of edu_outbox.
 *
 * Plain C on top of librdkafka and jansson. Nothing here includes postgres.h
 * or calls PostgreSQL: librdkafka's callbacks only record outcomes in the
 * structures below, and the caller (the background worker, or any other
 * program) acts on them from its own thread.
 */
#ifndef EDU_OUTBOX_RELAY_H
#define EDU_OUTBOX_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELAY_ERRLEN 512

/* ---- topic.c: Kafka's topic name rules ---- */
#define RELAY_TOPIC_MAX_LEN 249
/* NULL if the name is a legal Kafka topic, else a sentence saying why not. */
extern const char *relay_topic_problem(const char *topic, size_t len);

/* ---- properties.c: "key=value; key=value" pass-through settings ---- */
typedef void (*relay_property_fn) (const char *key, const char *value, void *arg);
/*
 * Splits a property list and calls fn for each pair. Returns false and fills
 * errbuf on a syntax error.
 */
extern bool relay_properties_foreach(const char *list, relay_property_fn fn,
									 void *arg, char *errbuf, size_t errlen);
/*
 * Checks a list against librdkafka's own configuration (unknown names, bad
 * values) and against the properties the relay owns. No secrets are copied
 * into errbuf: only the offending property name and librdkafka's reason.
 */
extern bool relay_properties_check(const char *list, char *errbuf, size_t errlen);
/* True for properties that carry credentials: only allowed in the secrets file. */
extern bool relay_property_is_secret(const char *name);
/*
 * Reads a secrets file: one name=value per line, of any length ('#' starts a
 * comment; the value is the rest of the line, so it may hold ';'). Calls fn
 * per pair. Errors name the file and line, never a value, nor a name
 * librdkafka does not know (it may be a misplaced part of a secret).
 */
extern bool relay_properties_read_file(const char *path, relay_property_fn fn,
									   void *arg, char *errbuf, size_t errlen);

/* ---- limits.c: the largest record the producer may send ---- */
/*
 * message.max.bytes of the relay's producer unless the property list sets
 * it: 1 MiB, so that a payload of edu_outbox.max_payload_size (1000000) plus
 * a key and headers at their default limits fits, while the record batch
 * stays under a default broker's and topic's limit (1048588 bytes).
 */
#define RELAY_MESSAGE_MAX_BYTES_DEFAULT 1048576
/* Upper bounds of Kafka's v2 framing: record batch header, one record, one header. */
#define RELAY_BATCH_OVERHEAD 61
#define RELAY_RECORD_OVERHEAD 36
#define RELAY_HEADER_OVERHEAD 10
/* message.max.bytes as the producer will use it with this property list. */
extern int	relay_message_max_bytes(const char *properties);
/*
 * Upper bound of the bytes one record takes in a batch of its own: value,
 * key, the given headers (names plus values) and outbox-id, and framing.
 */
extern size_t relay_record_max_size(size_t key_len, size_t value_len,
									size_t header_bytes, size_t nheaders);

/* ---- headers.c: user headers (a JSON object of strings) ---- */
struct rd_kafka_headers_s;
/*
 * Builds the record headers: every member of headers_json (may be NULL) plus
 * outbox-id. Returns NULL and fills errbuf if the JSON is not an object of
 * strings.
 */
extern struct rd_kafka_headers_s *relay_headers_build(const char *headers_json,
													  int64_t outbox_id,
													  char *errbuf, size_t errlen);

/* ---- errors.c ---- */
/*
 * True for errors that sending the same record again cannot cure (too
 * large, unknown topic, not authorized, malformed): the record is poison.
 */
extern bool relay_error_is_permanent(int err);
/*
 * "Unknown topic" from librdkafka or the broker. Not permanent by itself:
 * librdkafka's clock for it also runs while the brokers are down, so a new
 * topic published during an outage fails as unknown the moment a broker is
 * back. The caller asks the brokers (relay_producer_topic_known) and uses
 * RELAY_ERR_TOPIC_REFUSED once they keep saying it does not exist.
 */
extern bool relay_error_is_unknown_topic(int err);
/* Our own code, outside librdkafka's ranges: the topic is refused for good. */
#define RELAY_ERR_TOPIC_REFUSED (-100000)
extern const char *relay_error_text(int err);
/* True for SASL and TLS failures: wrong credentials or certificates, not an outage. */
extern bool relay_error_is_authentication(int err);

/* ---- producer.c / delivery.c ---- */

/*
 * One record to send. value is malloc'ed: relay_chunk_send hands it to
 * librdkafka, which frees it once the record is done with, and sets the
 * field to NULL; a value still set afterwards is the caller's to free. The
 * other strings are the caller's and are copied by librdkafka.
 */
typedef struct RelayRecord
{
	int64_t		id;				/* outbox id, also sent as header outbox-id */
	const char *topic;
	const char *key;			/* NULL: no key */
	size_t		key_len;
	char	   *value;
	size_t		value_len;
	const char *headers_json;	/* NULL: only outbox-id */
	int64_t		timestamp_ms;	/* record timestamp, ms since the epoch */
} RelayRecord;

/* Per-record outcome, written by the delivery report callback. */
typedef enum RelayOutcome
{
	RELAY_PENDING = 0,			/* not sent, or no report yet */
	RELAY_DELIVERED,			/* broker acknowledged it (acks=all) */
	RELAY_FAILED				/* report carried an error: send again */
} RelayOutcome;

/*
 * The records sent together and their outcomes. It belongs to the producer
 * (see relay_chunk_begin); delivery reports of an earlier chunk, or arriving
 * while the producer is destroyed, never touch it.
 */
typedef struct RelayChunk
{
	int			nrecords;
	int			nsent;			/* records handed to librdkafka */
	int			nreported;		/* delivery reports received */
	RelayOutcome *outcome;		/* nrecords entries */
	int		   *error;			/* nrecords rd_kafka_resp_err_t, for FAILED ones */
} RelayChunk;

typedef struct RelayProducer RelayProducer;

/*
 * The producer's default topic.metadata.propagation.max.ms: how long an event
 * for a topic the broker does not know waits before it fails (and so, since
 * the relay settles a chunk before the next, how long it holds back others).
 */
#define RELAY_REFUSED_TOPIC_WAIT_MS 5000

/* Connection state seen through librdkafka's error and stats callbacks. */
typedef struct RelayHealth
{
	bool		fatal;			/* producer must be destroyed and replaced */
	bool		brokers_down;	/* all brokers unreachable right now */
	int			last_error;		/* rd_kafka_resp_err_t, 0 if none */
	char		last_error_text[RELAY_ERRLEN];
	char		auth_error_text[RELAY_ERRLEN];	/* last SASL/TLS failure, if any */
} RelayHealth;

/*
 * Creates an idempotent producer (acks=all). properties is the pass-through
 * list and secrets_file (NULL or "" for none) a file of secret properties;
 * the relay's own defaults are applied first so users may override
 * linger.ms and the like, but never idempotence or acks.
 *
 * transactional_id (NULL or "": none) makes it a transactional producer for
 * exactly-once delivery (transaction.c): transaction.timeout.ms defaults to
 * RELAY_TRANSACTION_TIMEOUT_MS, and message.timeout.ms must not exceed it.
 */
#define RELAY_TRANSACTION_TIMEOUT_MS 60000
extern RelayProducer *relay_producer_create(const char *brokers,
											const char *properties,
											const char *secrets_file,
											const char *transactional_id,
											char *errbuf, size_t errlen);
/* Purges whatever is still queued, waits briefly for its reports, frees. */
extern void relay_producer_destroy(RelayProducer *producer);
/* Serves callbacks for up to timeout_ms. */
extern void relay_producer_poll(RelayProducer *producer, int timeout_ms);
extern void relay_producer_health(RelayProducer *producer, RelayHealth *out);
/*
 * Asks the brokers for cluster metadata, blocking up to timeout_ms, and sets
 * health.brokers_down by whether any broker answered. librdkafka's
 * all-brokers-down event alone misses outages: a transactional producer's
 * coordinator connection is counted apart, and the event may never come.
 */
extern bool relay_producer_probe(RelayProducer *producer, int timeout_ms);
/*
 * Asks a broker about topic (a metadata request, which also makes a broker
 * with auto-creation create it): 1 if it exists or is being created, 0 if the
 * broker says it does not exist, -1 if no broker answered within timeout_ms.
 */
extern int	relay_producer_topic_known(RelayProducer *producer, const char *topic,
									   int timeout_ms);

/*
 * Starts a chunk of nrecords records; reports for earlier chunks are ignored
 * from now on. The chunk stays valid until the next relay_chunk_begin or
 * relay_producer_destroy. NULL if out of memory.
 */
extern RelayChunk *relay_chunk_begin(RelayProducer *producer, int nrecords);
/*
 * Hands records [chunk->nsent, nrecords) to librdkafka, stopping at the first
 * one it refuses for good (that one is marked FAILED). A full local queue is
 * served by polling, not an error. Returns false if sending stopped early.
 */
extern bool relay_chunk_send(RelayProducer *producer, RelayChunk *chunk,
							 RelayRecord *records);
/* True once every sent record has its delivery report. */
extern bool relay_chunk_settled(const RelayChunk *chunk);

/* ---- transaction.c: exactly once, one Kafka transaction per chunk ---- */
typedef enum RelayTxnResult
{
	RELAY_TXN_OK,
	RELAY_TXN_RETRY,			/* transient (timed out, coordinator busy): call
								 * again later */
	RELAY_TXN_ABORTED,			/* the transaction was aborted (abortable
								 * error): nothing of it is visible to
								 * read_committed readers; send the chunk
								 * again in a new one */
	RELAY_TXN_FENCED,			/* a newer producer with the same
								 * transactional.id took over */
	RELAY_TXN_FATAL				/* any other fatal error: destroy the producer
								 * and build a new one */
} RelayTxnResult;

/*
 * All of these run on the caller's thread and block for at most timeout_ms
 * (begin and add_record do not block). FENCED and FATAL also set the
 * producer's health.fatal.
 *
 * relay_txn_init: rd_kafka_init_transactions. Fences older producers with the
 * same transactional.id and completes or aborts their open transaction.
 * RETRY: call it again.
 */
extern RelayTxnResult relay_txn_init(RelayProducer *producer, int timeout_ms,
									 char *errbuf, size_t errlen);
extern RelayTxnResult relay_txn_begin(RelayProducer *producer,
									  char *errbuf, size_t errlen);
/*
 * Produces one extra record in the open transaction (the relay's position),
 * always to partition 0, where relay_position_read looks; its delivery
 * report never touches the current RelayChunk. key and value are copied.
 * false + errbuf if librdkafka refuses it or its local queue stays full for
 * 5 s (brokers down): abort the transaction then.
 */
extern bool relay_txn_add_record(RelayProducer *producer, const char *topic,
								 const char *key, const char *value,
								 size_t value_len, char *errbuf, size_t errlen);
/*
 * Commits (flushing what is still queued first). On an abortable error it
 * aborts the transaction itself, within the same timeout, and returns
 * RELAY_TXN_ABORTED; RETRY means the outcome is not known yet: call it
 * again (it then goes on with the commit, or with the abort it began).
 */
extern RelayTxnResult relay_txn_commit(RelayProducer *producer, int timeout_ms,
									   char *errbuf, size_t errlen);
/* OK once aborted; RETRY: call it again (relay_txn_abort_pending is true till then). */
extern RelayTxnResult relay_txn_abort(RelayProducer *producer, int timeout_ms,
									  char *errbuf, size_t errlen);
extern bool relay_txn_abort_pending(const RelayProducer *producer);

/*
 * Between two attempts of a call that answered RETRY: false stops retrying
 * (the caller then gets RETRY). Runs on the caller's thread.
 */
typedef bool (*RelayTxnWait) (void *arg);

/*
 * relay_txn_commit / relay_txn_abort, called again (each call blocking up to
 * call_timeout_ms) until the outcome is known or wait(arg) says stop.
 */
extern RelayTxnResult relay_txn_commit_settled(RelayProducer *producer, int call_timeout_ms,
											   RelayTxnWait wait, void *arg,
											   char *errbuf, size_t errlen);
extern RelayTxnResult relay_txn_abort_settled(RelayProducer *producer, int call_timeout_ms,
											  RelayTxnWait wait, void *arg,
											  char *errbuf, size_t errlen);

/* ---- position.c: the relay's position as a JSON record in a compacted topic ---- */
typedef struct RelayPosition
{
	int64_t		seq;			/* positions committed so far (monotonic) */
	char		state_id[37];	/* uuid text of the relay_state row it belongs to */
	char	   *delivered_snapshot; /* pg_snapshot text, malloc'ed */
	char	   *batch_snapshot; /* pg_snapshot text or NULL (no batch open),
								 * malloc'ed */
	int			pos_index;
	uint64_t	pos_xid;		/* 0: none */
	int			pos_done;
	int64_t		pos_last_id;
} RelayPosition;

#define RELAY_POSITION_VERSION 1

/* malloc'ed JSON text ({"version":1,...}), NUL-terminated; *len without the NUL. NULL if out of memory or pos is invalid. */
extern char *relay_position_encode(const RelayPosition *pos, size_t *len);
/* false + errbuf for anything malformed or of another version; *out is then untouched */
extern bool relay_position_decode(const char *json, size_t len, RelayPosition *out,
								  char *errbuf, size_t errlen);
/* Frees the strings (not pos itself) and sets them to NULL. */
extern void relay_position_free(RelayPosition *pos);

/*
 * The last committed record with this key in topic (partition 0), read with
 * a consumer of its own (no group, isolation.level=read_committed, the same
 * brokers, properties and secrets file as the producer).
 * Returns 1: found (*value malloc'ed, NUL-terminated, *len without the NUL),
 * 0: the topic or the key has no committed record, -1: error or timeout
 * (errbuf says why; no secrets).
 *
 * Reads backwards from the end in growing windows, so the cost follows the
 * distance to the key's last record, not the topic's size. It waits until
 * every transaction open when it started has finished (the last stable
 * offset reached the end), so call it after relay_txn_init has aborted this
 * relay's own leftover transaction.
 */
extern int	relay_position_read(const char *brokers, const char *properties,
								const char *secrets_file, const char *topic,
								const char *key, int timeout_ms,
								char **value, size_t *len,
								char *errbuf, size_t errlen);
/*
 * Creates topic if missing (Admin API through the producer's handle): one
 * partition, cleanup.policy=compact, replication factor min(3, brokers in
 * the cluster), min.insync.replicas min(2, rf). Already existing is
 * success. 0 ok, -1 error (errbuf).
 */
extern int	relay_position_topic_ensure(RelayProducer *producer, const char *topic,
										int timeout_ms, char *errbuf, size_t errlen);

#endif							/* EDU_OUTBOX_RELAY_H */
