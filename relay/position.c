/*
 * position.c: the relay's position as a JSON record in a compacted topic.
 *
 * In exactly-once mode every chunk's transaction also writes the position
 * the relay reached (relay_txn_add_record), keyed by relay, to one compacted
 * topic. After a restart the last committed record of that key says where
 * the events that Kafka already has end, whatever PostgreSQL remembers.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "producer_internal.h"

/* ---- encode / decode ---- */

/* 8-4-4-4-12 hex digits, as PostgreSQL prints a uuid */
static bool
is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!isxdigit((unsigned char) s[i]))
			return false;
	}
	return true;
}

/* pg_snapshot text: xmin:xmax:xip,xip,... (the list may be empty) */
static bool
is_snapshot(const char *s)
{
	for (int field = 0; field < 2; field++)
	{
		if (!isdigit((unsigned char) *s))
			return false;
		while (isdigit((unsigned char) *s))
			s++;
		if (*s++ != ':')
			return false;
	}
	while (*s)
	{
		if (!isdigit((unsigned char) *s))
			return false;
		while (isdigit((unsigned char) *s))
			s++;
		if (*s == ',')
			s++;
		else if (*s != '\0')
			return false;
		else
			break;
	}
	return s[-1] != ',';
}

#define POSITION_FORMAT \
	"{\"version\":%d,\"seq\":%" PRId64 ",\"state_id\":\"%s\",\"delivered_snapshot\":\"%s\"," \
	"\"batch_snapshot\":%s%s%s,\"pos_index\":%d,\"pos_xid\":%" PRIu64 ",\"pos_done\":%d," \
	"\"pos_last_id\":%" PRId64 "}"
#define POSITION_ARGS(p) \
	RELAY_POSITION_VERSION, (p)->seq, (p)->state_id, (p)->delivered_snapshot, \
	(p)->batch_snapshot ? "\"" : "", (p)->batch_snapshot ? (p)->batch_snapshot : "null", \
	(p)->batch_snapshot ? "\"" : "", (p)->pos_index, (p)->pos_xid, (p)->pos_done, (p)->pos_last_id

char *
relay_position_encode(const RelayPosition *pos, size_t *len)
{
	char	   *text;
	int			n;

	if (pos->seq < 0 || !is_uuid(pos->state_id) || pos->delivered_snapshot == NULL ||
		!is_snapshot(pos->delivered_snapshot) ||
		(pos->batch_snapshot != NULL && !is_snapshot(pos->batch_snapshot)) ||
		pos->pos_index < 0 || pos->pos_done < 0 || pos->pos_last_id < 0 ||
		pos->pos_xid > (uint64_t) INT64_MAX)
		return NULL;
	/*
	 * Written by hand, not with jansson's builders: inside the server the
	 * name json_object binds to PostgreSQL's own SQL function of that name.
	 * Every string was checked above to hold only digits, ':', ',', hex
	 * digits and '-', so none needs escaping.
	 */
	n = snprintf(NULL, 0, POSITION_FORMAT, POSITION_ARGS(pos));
	text = malloc(n + 1);
	if (text == NULL)
		return NULL;
	snprintf(text, n + 1, POSITION_FORMAT, POSITION_ARGS(pos));
	if (len != NULL)
		*len = (size_t) n;
	return text;
}

/* A non-negative integer member no larger than max, or false + errbuf. */
static bool
get_count(json_t *o, const char *name, json_int_t max, json_int_t *out,
		  char *errbuf, size_t errlen)
{
	json_t	   *v = json_object_get(o, name);

	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
	{
		snprintf(errbuf, errlen, "position record: \"%s\" must be an integer between 0 and %lld",
				 name, (long long) max);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

static const char *
get_snapshot(json_t *o, const char *name, bool nullable, char *errbuf, size_t errlen)
{
	json_t	   *v = json_object_get(o, name);

	if (nullable && json_is_null(v))
		return "";
	if (!json_is_string(v) || !is_snapshot(json_string_value(v)))
	{
		snprintf(errbuf, errlen, "position record: \"%s\" must be a pg_snapshot text%s",
				 name, nullable ? " or null" : "");
		return NULL;
	}
	return json_string_value(v);
}

bool
relay_position_decode(const char *json, size_t len, RelayPosition *out,
					  char *errbuf, size_t errlen)
{
	json_error_t jerr;
	json_t	   *o;
	json_t	   *v;
	json_int_t	seq,
				index,
				xid,
				done,
				last_id;
	const char *delivered,
			   *batch;
	bool		ok = false;

	o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL)
	{
		snprintf(errbuf, errlen, "position record is not JSON: %s", jerr.text);
		return false;
	}
	if (!json_is_object(o))
	{
		snprintf(errbuf, errlen, "position record is not a JSON object");
		goto done;
	}
	v = json_object_get(o, "version");
	if (!json_is_integer(v) || json_integer_value(v) != RELAY_POSITION_VERSION)
	{
		snprintf(errbuf, errlen, "position record has version %s, expected %d",
				 json_is_integer(v) ? "other than 1" : "missing or not an integer",
				 RELAY_POSITION_VERSION);
		goto done;
	}
	v = json_object_get(o, "state_id");
	if (!json_is_string(v) || !is_uuid(json_string_value(v)))
	{
		snprintf(errbuf, errlen, "position record: \"state_id\" must be a uuid");
		goto done;
	}
	if (!get_count(o, "seq", INT64_MAX, &seq, errbuf, errlen) ||
		!get_count(o, "pos_index", INT32_MAX, &index, errbuf, errlen) ||
		!get_count(o, "pos_xid", INT64_MAX, &xid, errbuf, errlen) ||
		!get_count(o, "pos_done", INT32_MAX, &done, errbuf, errlen) ||
		!get_count(o, "pos_last_id", INT64_MAX, &last_id, errbuf, errlen))
		goto done;
	if ((delivered = get_snapshot(o, "delivered_snapshot", false, errbuf, errlen)) == NULL ||
		(batch = get_snapshot(o, "batch_snapshot", true, errbuf, errlen)) == NULL)
		goto done;

	memset(out, 0, sizeof(*out));
	out->delivered_snapshot = strdup(delivered);
	out->batch_snapshot = batch[0] ? strdup(batch) : NULL;
	if (out->delivered_snapshot == NULL || (batch[0] && out->batch_snapshot == NULL))
	{
		relay_position_free(out);
		snprintf(errbuf, errlen, "out of memory");
		goto done;
	}
	out->seq = seq;
	snprintf(out->state_id, sizeof(out->state_id), "%s", json_string_value(v));
	out->pos_index = (int) index;
	out->pos_xid = (uint64_t) xid;
	out->pos_done = (int) done;
	out->pos_last_id = last_id;
	ok = true;
done:
	json_decref(o);
	return ok;
}

void
relay_position_free(RelayPosition *pos)
{
	free(pos->delivered_snapshot);
	free(pos->batch_snapshot);
	pos->delivered_snapshot = NULL;
	pos->batch_snapshot = NULL;
}

/* ---- reading the last committed position ---- */

/* The first window read back from the end; each next one is WINDOW_GROWTH times larger. */
#define FIRST_WINDOW 256
#define WINDOW_GROWTH 8

typedef struct ReaderConf
{
	rd_kafka_conf_t *conf;
	char	   *errbuf;
	size_t		errlen;
	bool		failed;
} ReaderConf;

static void
reader_set(ReaderConf *st, const char *key, const char *value, bool secret)
{
	char		rderr[RELAY_ERRLEN];

	if (st->failed)
		return;
	if (rd_kafka_conf_set(st->conf, key, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK)
	{
		if (secret)
			snprintf(st->errbuf, st->errlen,
					 "librdkafka rejected property \"%s\" from the secrets file", key);
		else
			snprintf(st->errbuf, st->errlen, "librdkafka rejected property \"%s\": %s", key, rderr);
		st->failed = true;
	}
}

static void
reader_set_user(const char *key, const char *value, void *arg)
{
	reader_set(arg, key, value, false);
}

static void
reader_set_secret(const char *key, const char *value, void *arg)
{
	reader_set(arg, key, value, true);
}

/* The producer's settings are in the property list: a consumer ignores them. */
static void
reader_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void) rk;
	(void) level;
	(void) fac;
	(void) buf;
}

static rd_kafka_t *
reader_create(const char *brokers, const char *properties, const char *secrets_file,
			  char *errbuf, size_t errlen)
{
	ReaderConf	st;
	rd_kafka_t *rk;

	if (!relay_properties_check(properties, errbuf, errlen))
		return NULL;
	st.conf = rd_kafka_conf_new();
	st.errbuf = errbuf;
	st.errlen = errlen;
	st.failed = false;
	relay_properties_foreach(properties, reader_set_user, &st, errbuf, errlen);
	if (!st.failed &&
		!relay_properties_read_file(secrets_file, reader_set_secret, &st, errbuf, errlen))
		st.failed = true;
	reader_set(&st, "bootstrap.servers", brokers, false);
	/* only what committed transactions wrote, and word when the end is reached */
	reader_set(&st, "isolation.level", "read_committed", false);
	reader_set(&st, "enable.partition.eof", "true", false);
	reader_set(&st, "enable.auto.commit", "false", false);
	reader_set(&st, "auto.offset.reset", "earliest", false);
	reader_set(&st, "fetch.wait.max.ms", "100", false);
	if (st.failed)
	{
		rd_kafka_conf_destroy(st.conf);
		return NULL;
	}
	rd_kafka_conf_set_log_cb(st.conf, reader_log);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, st.conf, errbuf, errlen);
	if (rk == NULL)
		rd_kafka_conf_destroy(st.conf);
	return rk;
}

static int
remaining_ms(int64_t deadline)
{
	int64_t		left = deadline - relay_now_ms();

	return left > 0 ? (int) left : 0;
}

/* 1: the topic exists, 0: it does not, -1: no answer (errbuf) */
static int
topic_exists(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int timeout_ms, char *errbuf, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err;
	int			exists = -1;

	err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(errbuf, errlen, "could not get metadata of topic \"%s\": %s",
				 rd_kafka_topic_name(rkt), rd_kafka_err2str(err));
		return -1;
	}
	if (md->topic_cnt == 1)
	{
		err = md->topics[0].err;
		if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			exists = 0;
		else if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0)
			exists = 1;
		else
			snprintf(errbuf, errlen, "topic \"%s\": %s", rd_kafka_topic_name(rkt),
					 rd_kafka_err2str(err != RD_KAFKA_RESP_ERR_NO_ERROR ? err :
									  RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE));
	}
	rd_kafka_metadata_destroy(md);
	return exists;
}

typedef struct ScanState
{
	const char *key;
	size_t		keylen;
	char	   *value;			/* last match so far, malloc'ed; NULL: tombstone */
	size_t		len;
	bool		found;
} ScanState;

/*
 * Reads [start, stop) of partition 0 and keeps the last record with the
 * key. newest: the window at the end, read on past stop until the end that
 * read_committed sees (the last stable offset) reaches the high watermark
 * of the first fetch, so that no transaction open when the read began can
 * still commit a later position. The stop given there is the last stable
 * offset the brokers reported (a read_committed ListOffsets never says
 * more). 0 done, -1 error or timeout.
 */
static int
scan_window(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int64_t start, int64_t stop, bool newest,
			ScanState *scan, int64_t deadline, char *errbuf, size_t errlen)
{
	int64_t		reached = start;
	int64_t		target = stop;
	bool		target_known = !newest;
	int			rc = -1;
	char		why[RELAY_ERRLEN];

	if (rd_kafka_consume_start(rkt, 0, start) != 0)
	{
		snprintf(errbuf, errlen, "could not read topic \"%s\": %s", rd_kafka_topic_name(rkt),
				 rd_kafka_err2str(rd_kafka_last_error()));
		return -1;
	}
	snprintf(why, sizeof(why), "timed out reading topic \"%s\" from offset %" PRId64,
			 rd_kafka_topic_name(rkt), start);
	while (remaining_ms(deadline) > 0)
	{
		int			wait = remaining_ms(deadline) < 100 ? remaining_ms(deadline) : 100;
		rd_kafka_message_t *m = rd_kafka_consume(rkt, 0, wait);

		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		{
			/* the end that read_committed sees: all before it is decided */
			reached = m->offset;
			rd_kafka_message_destroy(m);
			if (!target_known)
			{
				int64_t		low,
							high;

				/* the fetch responses' high watermark, which counts open transactions */
				if (rd_kafka_get_watermark_offsets(rk, rd_kafka_topic_name(rkt), 0, &low, &high) ==
					RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
				{
					target = high > target ? high : target;
					target_known = true;
				}
			}
			if (target_known && reached >= target)
			{
				rc = 0;
				break;
			}
			snprintf(why, sizeof(why),
					 "timed out reading topic \"%s\": a transaction still open holds back offsets %" PRId64 " to %" PRId64,
					 rd_kafka_topic_name(rkt), reached, target);
			continue;
		}
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			bool		hopeless = relay_error_is_permanent(m->err) ||
				relay_error_is_authentication(m->err);

			snprintf(why, sizeof(why), "could not read topic \"%s\": %s",
					 rd_kafka_topic_name(rkt), rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			if (hopeless)
				break;
			continue;
		}
		if (!newest && m->offset >= stop)
		{
			/* past the window: everything before it is read */
			rd_kafka_message_destroy(m);
			rc = 0;
			break;
		}
		if (m->key_len == scan->keylen && memcmp(m->key, scan->key, scan->keylen) == 0)
		{
			free(scan->value);
			scan->value = NULL;
			scan->len = 0;
			scan->found = true;
			if (m->payload != NULL)
			{
				scan->value = malloc(m->len + 1);
				if (scan->value == NULL)
				{
					snprintf(why, sizeof(why), "out of memory");
					rd_kafka_message_destroy(m);
					break;
				}
				memcpy(scan->value, m->payload, m->len);
				scan->value[m->len] = '\0';
				scan->len = m->len;
			}
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consume_stop(rkt, 0);
	if (rc != 0)
		snprintf(errbuf, errlen, "%s", why);
	return rc;
}

int
relay_position_read(const char *brokers, const char *properties, const char *secrets_file,
					const char *topic, const char *key, int timeout_ms,
					char **value, size_t *len, char *errbuf, size_t errlen)
{
	int64_t		deadline = relay_now_ms() + timeout_ms;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	int64_t		low,
				high,
				start,
				stop;
	int64_t		window = FIRST_WINDOW;
	ScanState	scan = {key, strlen(key), NULL, 0, false};
	rd_kafka_resp_err_t err;
	int			result = -1;

	*value = NULL;
	*len = 0;
	rk = reader_create(brokers, properties, secrets_file, errbuf, errlen);
	if (rk == NULL)
		return -1;
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (rkt == NULL)
	{
		snprintf(errbuf, errlen, "could not read topic \"%s\": %s", topic,
				 rd_kafka_err2str(rd_kafka_last_error()));
		rd_kafka_destroy(rk);
		return -1;
	}
	switch (topic_exists(rk, rkt, remaining_ms(deadline), errbuf, errlen))
	{
		case 0:
			result = 0;
			/* fall through */
		case -1:
			goto out;
	}
	err = rd_kafka_query_watermark_offsets(rk, topic, 0, &low, &high, remaining_ms(deadline));
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(errbuf, errlen, "could not get the offsets of topic \"%s\": %s", topic,
				 rd_kafka_err2str(err));
		goto out;
	}

	/*
	 * Backwards from the end: the key's last record is usually among the
	 * last few (a relay writes one per transaction), while the topic may be
	 * long and is compacted lazily. The newest window is read even when the
	 * topic looks empty: it waits for transactions still open.
	 */
	stop = high;
	for (;;)
	{
		start = stop - window > low ? stop - window : low;
		if (scan_window(rk, rkt, start, stop, stop == high, &scan, deadline, errbuf, errlen) != 0)
			break;
		if (scan.found)
		{
			result = scan.value != NULL ? 1 : 0;	/* a tombstone deleted it */
			break;
		}
		if (start <= low)
		{
			result = 0;
			break;
		}
		stop = start;
		window *= WINDOW_GROWTH;
	}
out:
	if (result == 1)
	{
		*value = scan.value;
		*len = scan.len;
	}
	else
		free(scan.value);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	return result;
}

/* ---- creating the topic ---- */

int
relay_position_topic_ensure(RelayProducer *p, const char *topic, int timeout_ms,
							char *errbuf, size_t errlen)
{
	int64_t		deadline = relay_now_ms() + timeout_ms;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err;
	rd_kafka_NewTopic_t *nt;
	rd_kafka_AdminOptions_t *opts;
	rd_kafka_queue_t *queue;
	rd_kafka_event_t *ev;
	char		rderr[RELAY_ERRLEN];
	char		isr[16];
	int			brokers,
				rf;
	int			result = -1;

	/* brokers only: no topic list */
	err = rd_kafka_metadata(p->rk, 0, NULL, &md, remaining_ms(deadline));
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(errbuf, errlen, "could not get the cluster's metadata to create topic \"%s\": %s",
				 topic, rd_kafka_err2str(err));
		return -1;
	}
	brokers = md->broker_cnt;
	rd_kafka_metadata_destroy(md);
	rf = brokers < 3 ? (brokers > 0 ? brokers : 1) : 3;
	snprintf(isr, sizeof(isr), "%d", rf < 2 ? rf : 2);

	nt = rd_kafka_NewTopic_new(topic, 1, rf, rderr, sizeof(rderr));
	if (nt == NULL)
	{
		snprintf(errbuf, errlen, "could not create topic \"%s\": %s", topic, rderr);
		return -1;
	}
	/* the position must outlive any retention: only a newer one replaces it */
	if (rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact") != RD_KAFKA_RESP_ERR_NO_ERROR ||
		rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", isr) != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(errbuf, errlen, "could not create topic \"%s\": out of memory", topic);
		rd_kafka_NewTopic_destroy(nt);
		return -1;
	}
	opts = rd_kafka_AdminOptions_new(p->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_AdminOptions_set_request_timeout(opts, remaining_ms(deadline), rderr, sizeof(rderr));
	/* the broker answers once the topic exists, not merely once it is ordered */
	rd_kafka_AdminOptions_set_operation_timeout(opts, remaining_ms(deadline), rderr, sizeof(rderr));
	queue = rd_kafka_queue_new(p->rk);
	rd_kafka_CreateTopics(p->rk, &nt, 1, opts, queue);
	ev = rd_kafka_queue_poll(queue, remaining_ms(deadline));
	if (ev == NULL)
		snprintf(errbuf, errlen, "timed out creating topic \"%s\"", topic);
	else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(errbuf, errlen, "could not create topic \"%s\": %s", topic,
				 rd_kafka_event_error_string(ev));
	else
	{
		const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
		size_t		n = 0;
		const rd_kafka_topic_result_t **topics = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;

		err = n == 1 ? rd_kafka_topic_result_error(topics[0]) : RD_KAFKA_RESP_ERR__BAD_MSG;
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			result = 0;
		else
			snprintf(errbuf, errlen, "could not create topic \"%s\" (%d replicas, %d brokers): %s",
					 topic, rf, brokers,
					 n == 1 && rd_kafka_topic_result_error_string(topics[0]) ?
					 rd_kafka_topic_result_error_string(topics[0]) : rd_kafka_err2str(err));
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(queue);
	rd_kafka_AdminOptions_destroy(opts);
	rd_kafka_NewTopic_destroy(nt);
	return result;
}
