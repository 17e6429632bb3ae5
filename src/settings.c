/*
 * settings.c: the edu_outbox.* settings and their check hooks.
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/varlena.h"

#include "compat.h"
#include "coalesce.h"
#include "dead_letter.h"
#include "durability.h"
#include "settings.h"
#include "../relay/relay.h"

char	   *outbox_brokers = NULL;
char	   *outbox_database = NULL;
char	   *outbox_kafka_properties = NULL;
char	   *outbox_kafka_secrets_file = NULL;
int			outbox_chunk_max_events = 10000;
int			outbox_chunk_max_bytes = 64 * 1024 * 1024;
int			outbox_poll_interval_ms = 1000;
int			outbox_max_payload_size = 1000000;
int			outbox_max_key_size = 8192;
int			outbox_max_headers_size = 32768;
int			outbox_max_headers_count = 64;
/* The producer's message.max.bytes, from kafka_properties (see assign_kafka_properties). */
int			outbox_message_max_bytes = RELAY_MESSAGE_MAX_BYTES_DEFAULT;
int			outbox_final_flush_ms = 5000;
int			outbox_stall_timeout_ms = 60000;
int			outbox_dead_letter_mode = DEAD_LETTER_PARK_KEY;
bool		outbox_discard_pending_on_drop = false;
int			outbox_max_databases = 8;
int			outbox_delivery = OUTBOX_DELIVERY_AT_LEAST_ONCE;
char	   *outbox_transactional_id = NULL;
char	   *outbox_position_topic = NULL;

static const struct config_enum_entry delivery_modes[] = {
	{"at_least_once", OUTBOX_DELIVERY_AT_LEAST_ONCE, false},
	{"exactly_once", OUTBOX_DELIVERY_EXACTLY_ONCE, false},
	{NULL, 0, false}
};

static const struct config_enum_entry dead_letter_modes[] = {
	{"park_key", DEAD_LETTER_PARK_KEY, false},
	{"skip", DEAD_LETTER_SKIP, false},
	{"retry", DEAD_LETTER_RETRY, false},
	{NULL, 0, false}
};

static bool
check_nonempty(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
	{
		GUC_check_errdetail("The value must not be empty.");
		return false;
	}
	return true;
}

/* A legal Kafka topic name. */
static bool
check_position_topic(char **newval, void **extra, GucSource source)
{
	const char *problem;

	if (*newval == NULL)
		return true;
	problem = relay_topic_problem(*newval, strlen(*newval));
	if (problem != NULL)
	{
		GUC_check_errdetail("%s", problem);
		return false;
	}
	return true;
}

/* Only %d and %s are placeholders; the result must stay a usable transactional.id. */
static bool
check_transactional_id(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL)
		return true;
	for (const char *c = *newval; *c; c++)
	{
		if (*c == '%' && c[1] != 'd' && c[1] != 's')
		{
			GUC_check_errdetail("Only %%d (the database name) and %%s (the system identifier) may follow %%.");
			return false;
		}
		if (*c == '%')
			c++;
	}
	if (strlen(*newval) > 200)
	{
		GUC_check_errdetail("The template must not be longer than 200 bytes.");
		return false;
	}
	return true;
}

/* A comma-separated list of database names (double quotes allowed), or '*'. */
static bool
check_database_list(char **newval, void **extra, GucSource source)
{
	char	   *copy;
	List	   *names = NIL;
	bool		ok;

	if (*newval == NULL || (*newval)[0] == '\0')
	{
		GUC_check_errdetail("The value must not be empty.");
		return false;
	}
	copy = pstrdup(*newval);
	ok = SplitGUCList(copy, ',', &names) && names != NIL;
	list_free(names);
	pfree(copy);
	if (!ok)
	{
		GUC_check_errdetail("List syntax is invalid.");
		GUC_check_errhint("Give a comma-separated list of database names, or * for every database where the extension is created.");
		return false;
	}
	return true;
}

static bool
check_kafka_properties(char **newval, void **extra, GucSource source)
{
	char		errbuf[RELAY_ERRLEN];
	int		   *max_bytes;

	if (*newval != NULL && (*newval)[0] != '\0' &&
		!relay_properties_check(*newval, errbuf, sizeof(errbuf)))
	{
		/* the default message would repeat the value, and with it a password */
		GUC_check_errmsg("invalid value for parameter \"%s\"", "edu_outbox.kafka_properties");
		GUC_check_errdetail("%s", errbuf);
		GUC_check_errhint("Use semicolon-separated name=value pairs of librdkafka producer properties; credentials go in edu_outbox.kafka_secrets_file.");
		return false;
	}
	/* publish checks events against the producer's limit: keep it with the value */
	max_bytes = compat_guc_extra_malloc(sizeof(int));
	if (max_bytes == NULL)
		return false;
	*max_bytes = relay_message_max_bytes(*newval);
	*extra = max_bytes;
	return true;
}

static void
assign_kafka_properties(const char *newval, void *extra)
{
	outbox_message_max_bytes = extra ? *(int *) extra : RELAY_MESSAGE_MAX_BYTES_DEFAULT;
}

void
outbox_define_settings(void)
{
	DefineCustomStringVariable("edu_outbox.brokers",
							   "Kafka bootstrap servers the relay connects to.",
							   "A comma-separated host:port list.",
							   &outbox_brokers,
							   "localhost:9092",
							   PGC_SIGHUP, 0,
							   check_nonempty, NULL, NULL);

	DefineCustomStringVariable("edu_outbox.database",
							   "Databases whose outboxes are relayed, one worker each.",
							   "A comma-separated list of database names, or * for every database where the extension is created.",
							   &outbox_database,
							   "postgres",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   check_database_list, NULL, NULL);

	DefineCustomIntVariable("edu_outbox.max_databases",
							"Most databases relayed at the same time.",
							"Each relayed database takes a slot of shared memory and a background worker.",
							&outbox_max_databases,
							8, 1, 1000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	/* May carry credentials (sasl.password): superuser-only, never logged. */
	DefineCustomStringVariable("edu_outbox.kafka_properties",
							   "Extra librdkafka producer properties, as name=value pairs separated by semicolons.",
							   NULL,
							   &outbox_kafka_properties,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_kafka_properties, assign_kafka_properties, NULL);

	/* The path is not secret, but who may point the relay at files is. */
	DefineCustomStringVariable("edu_outbox.kafka_secrets_file",
							   "File of secret librdkafka properties (sasl.password, ssl.key.password), one name=value per line.",
							   "Credentials live here rather than in a setting, because PostgreSQL logs changed settings.",
							   &outbox_kafka_secrets_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("edu_outbox.chunk_max_events",
							"Most events the relay reads and sends together as one chunk.",
							NULL,
							&outbox_chunk_max_events,
							10000, 1, 100000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	/* bounds the relay's memory: a chunk is held once, by librdkafka, until acknowledged */
	DefineCustomIntVariable("edu_outbox.chunk_max_bytes",
							"Most bytes (payload, key and headers) the relay reads and sends together as one chunk.",
							"A single event larger than this is still sent, alone.",
							&outbox_chunk_max_bytes,
							64 * 1024 * 1024, 1024, MaxAllocSize,
							PGC_SIGHUP, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("edu_outbox.poll_interval",
							"Time the relay sleeps when no commit wakes it.",
							NULL,
							&outbox_poll_interval_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("edu_outbox.max_payload_size",
							"Largest payload, in bytes of JSON text, that outbox_publish accepts.",
							NULL,
							&outbox_max_payload_size,
							1000000, 1, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	/*
	 * The defaults fit together: a payload, key and headers each at its
	 * limit still make a record under the producer's message.max.bytes
	 * (relay.h), so anything accepted can be sent to a default broker.
	 */
	DefineCustomIntVariable("edu_outbox.max_key_size",
							"Largest event key, in bytes, that outbox_publish accepts.",
							NULL,
							&outbox_max_key_size,
							8192, 1, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("edu_outbox.max_headers_size",
							"Largest total of an event's header names and values, in bytes, that outbox_publish accepts.",
							NULL,
							&outbox_max_headers_size,
							32768, 0, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("edu_outbox.max_headers_count",
							"Most headers an event may have (besides outbox-id) that outbox_publish accepts.",
							NULL,
							&outbox_max_headers_count,
							64, 0, 100000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("edu_outbox.final_flush_timeout",
							"Time the relay waits at shutdown for in-flight events to be acknowledged.",
							NULL,
							&outbox_final_flush_ms,
							5000, 0, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("edu_outbox.stall_timeout",
							"Time without delivery progress, while events are pending, after which the relay reports itself stalled.",
							"outbox_status() then shows worker_state \"stalled\" and the reason in last_error.",
							&outbox_stall_timeout_ms,
							60000, 1000, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("edu_outbox.dead_letter_mode",
							 "What the relay does with an event Kafka refuses for good.",
							 "park_key: move it to the dead-letter table and hold back later events of its topic and key; "
							 "skip: move it there and let later events go on; retry: keep retrying it, holding back everything.",
							 &outbox_dead_letter_mode,
							 DEAD_LETTER_PARK_KEY, dead_letter_modes,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("edu_outbox.discard_pending_on_drop",
							 "Lets DROP EXTENSION edu_outbox discard events not yet delivered.",
							 "Off: DROP EXTENSION (or DROP SCHEMA ... CASCADE of its schema) is refused while events are pending or dead-lettered.",
							 &outbox_discard_pending_on_drop,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("edu_outbox.delivery",
							 "Delivery guarantee of the relay.",
							 "at_least_once: an event may reach Kafka twice after a crash; exactly_once: every chunk is "
							 "one Kafka transaction that also records the relay's position, so read_committed consumers see each event once.",
							 &outbox_delivery,
							 OUTBOX_DELIVERY_AT_LEAST_ONCE, delivery_modes,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("edu_outbox.transactional_id",
							   "Kafka transactional.id of the relay in exactly_once mode.",
							   "Empty: edu_outbox-<system identifier>-<database>. Otherwise a template: %d is the database name, "
							   "%s the system identifier. Relays with the same id fence each other.",
							   &outbox_transactional_id,
							   "",
							   PGC_SIGHUP, 0,
							   check_transactional_id, NULL, NULL);

	DefineCustomStringVariable("edu_outbox.position_topic",
							   "Compacted Kafka topic where the relay records its position in exactly_once mode.",
							   "Created if missing (one partition, cleanup.policy=compact).",
							   &outbox_position_topic,
							   "edu_outbox_positions",
							   PGC_SIGHUP, 0,
							   check_position_topic, NULL, NULL);

	outbox_define_durability_settings();
	outbox_define_coalesce_settings();
	MarkGUCPrefixReserved("edu_outbox");
}
