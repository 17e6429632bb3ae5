/*
 * producer.c: the idempotent (or, for exactly-once delivery, transactional)
 * librdkafka producer the relay sends through, and the callbacks that record
 * its health.
 *
 * All callbacks here are served on the thread that calls rd_kafka_poll() or
 * rd_kafka_flush(), i.e. the worker's own thread (logs are routed there
 * too); they only write into RelayProducer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "producer_internal.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/*
 * Defaults that users may override through the property list. A finite
 * message timeout lets the relay notice an outage and back off instead of
 * waiting blind; linger is kept short because the relay already hands over
 * whole chunks, and commit-to-Kafka latency matters more. message.max.bytes
 * is the limit publish checks events against (limits.c).
 *
 * An event for a topic Kafka refuses (unknown with auto-creation off, or a
 * name colliding with an existing one on '.'/'_') waits for
 * topic.metadata.propagation.max.ms before it fails, and the relay waits for
 * it, holding back every later event. librdkafka's 30 s made that 33 s;
 * 5 s still leaves an auto-created topic (visible after about 1 s here) time
 * to appear, where 1 s dead-lettered healthy new topics. See RELAY_REFUSED_TOPIC_WAIT_MS.
 */
static const char *const default_properties[][2] = {
	{"linger.ms", "1"},
	{"message.max.bytes", STRINGIFY(RELAY_MESSAGE_MAX_BYTES_DEFAULT)},
	{"topic.metadata.propagation.max.ms", STRINGIFY(RELAY_REFUSED_TOPIC_WAIT_MS)},
	{"message.timeout.ms", "30000"},
	{"socket.keepalive.enable", "true"},
	{"log.connection.close", "false"},
	{NULL, NULL}
};

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	RelayProducer *p = opaque;

	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char		buf[RELAY_ERRLEN - 16];	/* room for the "fatal: " prefix */
		rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));

		p->health.fatal = true;
		p->health.last_error = orig;
		snprintf(p->health.last_error_text, RELAY_ERRLEN, "fatal: %s", buf);
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
	{
		/* keep an authentication failure as the reason: it explains the outage */
		p->health.brokers_down = true;
		if (relay_error_is_authentication(p->health.last_error))
			return;
	}
	if (relay_error_is_authentication(err))
		snprintf(p->health.auth_error_text, RELAY_ERRLEN, "%s", reason);
	p->health.last_error = err;
	snprintf(p->health.last_error_text, RELAY_ERRLEN, "%s", reason);
}

/* librdkafka's own log lines are kept out of the server log; warnings feed last_error. */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	RelayProducer *p = rd_kafka_opaque(rk);

	if (p != NULL && level <= 4)
		snprintf(p->health.last_error_text, RELAY_ERRLEN, "%s: %s", fac, buf);
}

typedef struct ConfState
{
	rd_kafka_conf_t *conf;
	char	   *errbuf;
	size_t		errlen;
	bool		failed;
} ConfState;

static bool
conf_set(ConfState *st, const char *key, const char *value)
{
	char		rderr[RELAY_ERRLEN];

	if (st->failed)
		return false;
	if (rd_kafka_conf_set(st->conf, key, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK)
	{
		snprintf(st->errbuf, st->errlen, "librdkafka rejected property \"%s\": %s", key, rderr);
		st->failed = true;
		return false;
	}
	return true;
}

static void
conf_set_user(const char *key, const char *value, void *arg)
{
	conf_set(arg, key, value);
}

/* Like conf_set_user, but librdkafka's message may echo the value: say less. */
static void
conf_set_secret(const char *key, const char *value, void *arg)
{
	ConfState  *st = arg;
	char		rderr[RELAY_ERRLEN];

	if (st->failed)
		return;
	if (rd_kafka_conf_set(st->conf, key, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK)
	{
		snprintf(st->errbuf, st->errlen,
				 "librdkafka rejected property \"%s\" from the secrets file", key);
		st->failed = true;
	}
}

/*
 * librdkafka refuses a transactional producer whose records may outlive the
 * transaction; say so in the relay's terms instead of its own. 0 is
 * librdkafka's "no limit".
 */
static bool
check_transaction_timeout(ConfState *st)
{
	char		msg[32],
				txn[32];
	size_t		msglen = sizeof(msg),
				txnlen = sizeof(txn);
	long		msg_ms,
				txn_ms;

	if (st->failed)
		return false;
	if (rd_kafka_conf_get(st->conf, "message.timeout.ms", msg, &msglen) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_get(st->conf, "transaction.timeout.ms", txn, &txnlen) != RD_KAFKA_CONF_OK)
		return true;			/* let rd_kafka_new judge */
	msg_ms = strtol(msg, NULL, 10);
	txn_ms = strtol(txn, NULL, 10);
	if (msg_ms == 0 || msg_ms > txn_ms)
	{
		snprintf(st->errbuf, st->errlen,
				 "message.timeout.ms (%s) must not exceed transaction.timeout.ms (%s) for exactly-once delivery: lower message.timeout.ms or raise transaction.timeout.ms in the property list",
				 msg, txn);
		st->failed = true;
		return false;
	}
	return true;
}

RelayProducer *
relay_producer_create(const char *brokers, const char *properties,
					  const char *secrets_file, const char *transactional_id,
					  char *errbuf, size_t errlen)
{
	bool		transactional = transactional_id != NULL && transactional_id[0] != '\0';

	RelayProducer *p;
	ConfState	st;
	rd_kafka_t *rk;

	if (!relay_properties_check(properties, errbuf, errlen))
		return NULL;

	p = calloc(1, sizeof(RelayProducer));
	if (p == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	st.conf = rd_kafka_conf_new();
	st.errbuf = errbuf;
	st.errlen = errlen;
	st.failed = false;

	for (int i = 0; default_properties[i][0]; i++)
		conf_set(&st, default_properties[i][0], default_properties[i][1]);
	if (transactional)
		conf_set(&st, "transaction.timeout.ms", STRINGIFY(RELAY_TRANSACTION_TIMEOUT_MS));
	relay_properties_foreach(properties, conf_set_user, &st, errbuf, errlen);
	if (!st.failed &&
		!relay_properties_read_file(secrets_file, conf_set_secret, &st, errbuf, errlen))
		st.failed = true;
	/* Owned by the relay, set last: idempotence implies acks=all. */
	conf_set(&st, "bootstrap.servers", brokers);
	conf_set(&st, "enable.idempotence", "true");
	/* Fail fatally rather than leave a gap that a resend would fill out of order. */
	conf_set(&st, "enable.gapless.guarantee", "true");
	conf_set(&st, "log.queue", "true");
	if (transactional)
	{
		conf_set(&st, "transactional.id", transactional_id);
		check_transaction_timeout(&st);
	}
	if (st.failed)
	{
		rd_kafka_conf_destroy(st.conf);
		free(p);
		return NULL;
	}
	rd_kafka_conf_set_opaque(st.conf, p);
	rd_kafka_conf_set_dr_msg_cb(st.conf, relay_delivery_report);
	rd_kafka_conf_set_error_cb(st.conf, error_cb);
	rd_kafka_conf_set_log_cb(st.conf, log_cb);

	rk = rd_kafka_new(RD_KAFKA_PRODUCER, st.conf, errbuf, errlen);
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(st.conf);
		free(p);
		return NULL;
	}
	/* Route log lines to the main queue, served by our own poll calls. */
	rd_kafka_set_log_queue(rk, NULL);
	p->rk = rk;
	return p;
}

void
relay_producer_destroy(RelayProducer *p)
{
	if (p == NULL)
		return;
	/* detach first: the reports the purge fires must not reach any chunk */
	p->attached = false;
	p->generation++;
	/* Anything still queued is failed (reported) now, not sent later. */
	rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_flush(p->rk, 2000);
	rd_kafka_destroy(p->rk);
	free(p->chunk.outcome);
	free(p->chunk.error);
	free(p);
}

void
relay_producer_poll(RelayProducer *p, int timeout_ms)
{
	rd_kafka_poll(p->rk, timeout_ms);
}

void
relay_producer_health(RelayProducer *p, RelayHealth *out)
{
	*out = p->health;
}

bool
relay_producer_probe(RelayProducer *p, int timeout_ms)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, NULL, &md, timeout_ms);

	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_metadata_destroy(md);
		p->health.brokers_down = false;
		return true;
	}
	p->health.brokers_down = true;
	/* keep an authentication failure as the reason: it explains the outage */
	if (!relay_error_is_authentication(p->health.last_error))
	{
		p->health.last_error = err;
		snprintf(p->health.last_error_text, RELAY_ERRLEN,
				 "no broker answered within %d ms: %s", timeout_ms, rd_kafka_err2str(err));
	}
	return false;
}

int
relay_producer_topic_known(RelayProducer *p, const char *topic, int timeout_ms)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	int			known = -1;

	if (rkt == NULL)
		return -1;
	if (rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (md->topic_cnt == 1)
		{
			rd_kafka_resp_err_t err = md->topics[0].err;

			if (relay_error_is_unknown_topic(err) || err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION)
				known = 0;
			else if (err == RD_KAFKA_RESP_ERR_NO_ERROR ||
					 err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
				known = 1;
		}
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(rkt);
	return known;
}
