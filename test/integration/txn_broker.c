/*
 * txn_broker.c: the exactly-once parts of relay/ that librdkafka 2.0.2's
 * mock cluster cannot show, against a real broker (argv[1], bootstrap
 * servers): two producers with one transactional.id (the older is fenced),
 * the position topic's creation and configuration, and reading a key's last
 * position past aborted transactions and transaction markers, and not past
 * a transaction still open. Output is TAP. Run by test_txn_broker.py.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "producer_internal.h"
#include "tap.h"

#define TIMEOUT_MS 30000

static const char *brokers;
static char suffix[32];

static const char *
unique(const char *name)
{
	static char buf[4][128];
	static int	next = 0;
	char	   *out = buf[next++ % 4];

	snprintf(out, 128, "%s-%s", name, suffix);
	return out;
}

static RelayProducer *
txn_producer(const char *txn_id)
{
	char		errbuf[RELAY_ERRLEN];
	RelayProducer *p = relay_producer_create(brokers, NULL, NULL, txn_id, errbuf, sizeof(errbuf));

	if (p == NULL)
		printf("# producer: %s\n", errbuf);
	return p;
}

static RelayTxnResult
retry_init(RelayProducer *p, char *errbuf, size_t errlen)
{
	RelayTxnResult r = RELAY_TXN_RETRY;

	for (int i = 0; i < 5 && r == RELAY_TXN_RETRY; i++)
		r = relay_txn_init(p, TIMEOUT_MS, errbuf, errlen);
	return r;
}

static RelayTxnResult
retry_commit(RelayProducer *p, char *errbuf, size_t errlen)
{
	RelayTxnResult r = RELAY_TXN_RETRY;

	for (int i = 0; i < 5 && r == RELAY_TXN_RETRY; i++)
		r = relay_txn_commit(p, TIMEOUT_MS, errbuf, errlen);
	return r;
}

static bool
write_txn(RelayProducer *p, const char *topic, const char *key, const char *value, bool commit)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayTxnResult r;

	if (relay_txn_begin(p, errbuf, sizeof(errbuf)) != RELAY_TXN_OK ||
		!relay_txn_add_record(p, topic, key, value, strlen(value), errbuf, sizeof(errbuf)))
	{
		printf("# write: %s\n", errbuf);
		return false;
	}
	if (commit)
		r = retry_commit(p, errbuf, sizeof(errbuf));
	else
	{
		/* make sure the record is in the log before the abort marker */
		rd_kafka_flush(p->rk, TIMEOUT_MS);
		r = relay_txn_abort(p, TIMEOUT_MS, errbuf, sizeof(errbuf));
	}
	if (r != RELAY_TXN_OK)
		printf("# %s: %s\n", commit ? "commit" : "abort", errbuf);
	return r == RELAY_TXN_OK;
}

static int
read_key(const char *topic, const char *key, int timeout_ms, char **value, char *errbuf)
{
	size_t		len;

	*value = NULL;
	errbuf[0] = '\0';
	return relay_position_read(brokers, "linger.ms=5", NULL, topic, key, timeout_ms, value, &len,
							   errbuf, RELAY_ERRLEN);
}

/* The topic's value of a config entry, through the Admin API. */
static bool
topic_config(RelayProducer *p, const char *topic, const char *name, char *out, size_t outlen)
{
	rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	rd_kafka_queue_t *q = rd_kafka_queue_new(p->rk);
	rd_kafka_event_t *ev;
	bool		found = false;

	rd_kafka_DescribeConfigs(p->rk, &res, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, TIMEOUT_MS);
	if (ev && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		size_t		nres,
					nent;
		const rd_kafka_ConfigResource_t **rs =
			rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nres);
		const rd_kafka_ConfigEntry_t **es = nres == 1 ? rd_kafka_ConfigResource_configs(rs[0], &nent) : NULL;

		for (size_t i = 0; es && i < nent; i++)
			if (strcmp(rd_kafka_ConfigEntry_name(es[i]), name) == 0)
			{
				snprintf(out, outlen, "%s", rd_kafka_ConfigEntry_value(es[i]) ?
						 rd_kafka_ConfigEntry_value(es[i]) : "");
				found = true;
			}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_ConfigResource_destroy(res);
	return found;
}

static int
partition_count(RelayProducer *p, const char *topic)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	int			n = -1;

	if (rd_kafka_metadata(p->rk, 0, rkt, &md, TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
			n = md->topics[0].partition_cnt;
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(rkt);
	return n;
}

static void
test_fencing(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	const char *id = unique("relay-fence");
	RelayProducer *old = txn_producer(id);
	RelayProducer *new;
	RelayTxnResult r;
	RelayHealth h;
	char	   *value;
	int			rc;

	if (!check(old != NULL, "fencing: first producer created"))
		return;
	r = retry_init(old, errbuf, sizeof(errbuf));
	check(r == RELAY_TXN_OK, "fencing: first init OK (%s)", errbuf);
	relay_position_topic_ensure(old, unique("fence"), TIMEOUT_MS, errbuf, sizeof(errbuf));
	relay_txn_begin(old, errbuf, sizeof(errbuf));
	relay_txn_add_record(old, unique("fence"), "relay", "old", 3, errbuf, sizeof(errbuf));
	rd_kafka_flush(old->rk, TIMEOUT_MS);

	/* the second relay: its init aborts the first one's open transaction */
	new = txn_producer(id);
	r = retry_init(new, errbuf, sizeof(errbuf));
	check(r == RELAY_TXN_OK, "fencing: the second producer's init OK (%s)", errbuf);

	r = retry_commit(old, errbuf, sizeof(errbuf));
	relay_producer_health(old, &h);
	check(r == RELAY_TXN_FENCED, "fencing: the first producer's commit is FENCED (%d: %s)", r, errbuf);
	check(h.fatal, "fencing: the first producer's health says fatal (%s)", h.last_error_text);
	relay_producer_destroy(old);

	check(write_txn(new, unique("fence"), "relay", "new", true), "fencing: the second producer commits");
	rc = read_key(unique("fence"), "relay", TIMEOUT_MS, &value, errbuf);
	check(rc == 1 && value && strcmp(value, "new") == 0,
		  "fencing: only the second producer's record is committed (%s %s)", value ? value : "NULL", errbuf);
	free(value);
	relay_producer_destroy(new);
}

static void
test_topic_ensure(RelayProducer *p, const char *topic)
{
	char		errbuf[RELAY_ERRLEN] = "";
	char		v[64] = "";

	check(relay_position_topic_ensure(p, topic, TIMEOUT_MS, errbuf, sizeof(errbuf)) == 0,
		  "topic_ensure: creates the topic (%s)", errbuf);
	check(relay_position_topic_ensure(p, topic, TIMEOUT_MS, errbuf, sizeof(errbuf)) == 0,
		  "topic_ensure: an existing topic is success (%s)", errbuf);
	check(partition_count(p, topic) == 1, "topic_ensure: one partition (%d)", partition_count(p, topic));
	check(topic_config(p, topic, "cleanup.policy", v, sizeof(v)) && strcmp(v, "compact") == 0,
		  "topic_ensure: cleanup.policy=compact (%s)", v);
	/* one broker here: rf 1, so min.insync.replicas 1 */
	check(topic_config(p, topic, "min.insync.replicas", v, sizeof(v)) && strcmp(v, "1") == 0,
		  "topic_ensure: min.insync.replicas fits the one broker (%s)", v);
}

typedef struct ReadArgs
{
	const char *topic;
	const char *key;
	int			rc;
	char	   *value;
	char		errbuf[RELAY_ERRLEN];
} ReadArgs;

static void *
read_thread(void *arg)
{
	ReadArgs   *a = arg;

	a->rc = read_key(a->topic, a->key, TIMEOUT_MS, &a->value, a->errbuf);
	return NULL;
}

static void
test_read(RelayProducer *p, const char *topic)
{
	char		errbuf[RELAY_ERRLEN] = "";
	char		v[64];
	char	   *value;
	RelayProducer *other;
	bool		ok = true;
	int			rc;

	ok &= write_txn(p, topic, "relay-a", "a-1", true);
	ok &= write_txn(p, topic, "relay-a", "a-2", true);
	ok &= write_txn(p, topic, "relay-a", "a-aborted", false);
	for (int i = 0; i < 200 && ok; i++)
	{
		snprintf(v, sizeof(v), "b-%d", i);
		ok &= write_txn(p, topic, "relay-b", v, true);
	}
	ok &= write_txn(p, topic, "relay-b", "b-aborted", false);
	check(ok, "read: 202 transactions committed, 2 aborted");

	rc = read_key(topic, "relay-a", TIMEOUT_MS, &value, errbuf);
	check(rc == 1 && value && strcmp(value, "a-2") == 0,
		  "read: relay-a's last committed position, not its aborted one, 400 offsets back (%d %s %s)",
		  rc, value ? value : "NULL", errbuf);
	free(value);
	rc = read_key(topic, "relay-b", TIMEOUT_MS, &value, errbuf);
	check(rc == 1 && value && strcmp(value, "b-199") == 0,
		  "read: relay-b's last committed position, not its aborted one (%d %s %s)",
		  rc, value ? value : "NULL", errbuf);
	free(value);
	rc = read_key(topic, "relay-c", TIMEOUT_MS, &value, errbuf);
	check(rc == 0, "read: a key never written has no position (%d %s)", rc, errbuf);

	/*
	 * Another producer's open transaction holds the last stable offset back:
	 * a committed position after it cannot be seen yet, so the read must not
	 * answer "no newer position" but wait (here: time out).
	 */
	other = txn_producer(unique("relay-other"));
	retry_init(other, errbuf, sizeof(errbuf));
	relay_txn_begin(other, errbuf, sizeof(errbuf));
	relay_txn_add_record(other, topic, "relay-d", "d-open", 6, errbuf, sizeof(errbuf));
	rd_kafka_flush(other->rk, TIMEOUT_MS);
	write_txn(p, topic, "relay-a", "a-3", true);
	rc = read_key(topic, "relay-a", 3000, &value, errbuf);
	check(rc == -1 && strstr(errbuf, "transaction still open") != NULL,
		  "read: an open transaction before the end makes the read wait, not answer stale (%d %s %s)",
		  rc, value ? value : "NULL", errbuf);
	free(value);
	retry_commit(other, errbuf, sizeof(errbuf));
	rc = read_key(topic, "relay-a", TIMEOUT_MS, &value, errbuf);
	check(rc == 1 && value && strcmp(value, "a-3") == 0,
		  "read: once it commits, the newest position is read (%d %s %s)", rc, value ? value : "NULL", errbuf);
	free(value);
	rc = read_key(topic, "relay-d", TIMEOUT_MS, &value, errbuf);
	check(rc == 1 && value && strcmp(value, "d-open") == 0,
		  "read: and the other producer's (%d %s %s)", rc, value ? value : "NULL", errbuf);
	free(value);

	/* a read under way when the open transaction commits waits for it and sees it */
	relay_txn_begin(other, errbuf, sizeof(errbuf));
	relay_txn_add_record(other, topic, "relay-d", "d-2", 3, errbuf, sizeof(errbuf));
	rd_kafka_flush(other->rk, TIMEOUT_MS);
	write_txn(p, topic, "relay-a", "a-4", true);
	{
		ReadArgs	a = {topic, "relay-a", 0, NULL, ""};
		pthread_t	th;

		pthread_create(&th, NULL, read_thread, &a);
		relay_producer_poll(p, 1500);	/* let the read reach the open transaction */
		retry_commit(other, errbuf, sizeof(errbuf));
		pthread_join(th, NULL);
		check(a.rc == 1 && a.value && strcmp(a.value, "a-4") == 0,
			  "read: a read waiting behind an open transaction ends when it commits (%d %s %s)",
			  a.rc, a.value ? a.value : "NULL", a.errbuf);
		free(a.value);
	}
	relay_producer_destroy(other);

	/* a secrets file that cannot be read: an error naming it, nothing read */
	rc = relay_position_read(brokers, NULL, "/nonexistent/secrets", topic, "relay-a", TIMEOUT_MS,
							 &value, &(size_t) {0}, errbuf, sizeof(errbuf));
	check(rc == -1 && strstr(errbuf, "secrets file") != NULL, "read: a bad secrets file is an error (%s)",
		  errbuf);
}

int
main(int argc, char **argv)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p;
	const char *topic;

	if (argc != 2)
	{
		fprintf(stderr, "usage: %s BOOTSTRAP\n", argv[0]);
		return 2;
	}
	brokers = argv[1];
	snprintf(suffix, sizeof(suffix), "%ld-%d", (long) time(NULL), (int) (clock() & 0xffff));

	test_fencing();

	topic = unique("positions");
	p = txn_producer(unique("relay-positions"));
	if (check(p != NULL && retry_init(p, errbuf, sizeof(errbuf)) == RELAY_TXN_OK,
			  "positions: transactional producer ready (%s)", errbuf))
	{
		test_topic_ensure(p, topic);
		test_read(p, topic);
	}
	relay_producer_destroy(p);
	return tap_done();
}
