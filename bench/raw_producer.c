/*
 * raw_producer.c: the baseline for the relay throughput benchmark.
 *
 * Sends N records straight from memory to Kafka with a plain librdkafka
 * producer configured exactly like the edu_outbox relay (relay/producer.c):
 * enable.idempotence=true (acks=all), enable.gapless.guarantee=true,
 * linger.ms=1, message.timeout.ms=30000, socket.keepalive.enable=true,
 * log.connection.close=false, every other property at librdkafka's default
 * (batching, compression=none). Each record looks like a relayed outbox
 * event: a key drawn from KEYS distinct values ("k0".."k999"), the given
 * value bytes, an outbox-id header holding a running id, and a CreateTime
 * timestamp in milliseconds. Like the relay it copies the payload
 * (RD_KAFKA_MSG_F_COPY), builds a header list per record and serves delivery
 * reports with rd_kafka_poll(rk, 0) after every produce.
 *
 * The clock starts at the first produce call (the producer has already
 * connected and fetched the topic's metadata) and stops when the last
 * delivery report has arrived. Output: one JSON line on stdout.
 *
 *   raw_producer -b BROKERS -t TOPIC -n COUNT -f VALUE_FILE [-k KEYS] [-c CHUNK]
 *
 * -c CHUNK > 0 imitates the relay's stop-and-wait: send CHUNK records, wait
 * for all their reports (polling every 50 ms like relay_worker.c), then the
 * next CHUNK. The default 0 streams everything (the ideal producer).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

static long long delivered = 0;
static long long failed = 0;
static long long reported = 0;
static char first_error[512];

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t
now_ms_realtime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	(void) rk;
	(void) opaque;
	reported++;
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
		rd_kafka_message_status(msg) == RD_KAFKA_MSG_STATUS_PERSISTED)
		delivered++;
	else
	{
		if (failed++ == 0)
			snprintf(first_error, sizeof(first_error), "%s", rd_kafka_err2str(msg->err));
	}
}

static void
set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char		err[512];

	if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "raw_producer: %s=%s: %s\n", k, v, err);
		exit(2);
	}
}

static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (!f)
	{
		fprintf(stderr, "raw_producer: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	if (fread(buf, 1, n, f) != (size_t) n)
		exit(2);
	fclose(f);
	/* a trailing newline from the shell is not part of the value */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	*len = n;
	return buf;
}

int
main(int argc, char **argv)
{
	const char *brokers = "127.0.0.1:9092",
			   *topic = NULL,
			   *value_file = NULL;
	long long	count = 100000;
	int			nkeys = 1000;
	long long	chunk = 0;
	int			opt;
	char		errstr[512];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	const struct rd_kafka_metadata *md;
	char	   *value;
	size_t		value_len;
	double		t0,
				t1;
	long long	sent = 0;
	unsigned int seed = 12345;

	while ((opt = getopt(argc, argv, "b:t:n:f:k:c:")) != -1)
	{
		switch (opt)
		{
			case 'b': brokers = optarg; break;
			case 't': topic = optarg; break;
			case 'n': count = atoll(optarg); break;
			case 'f': value_file = optarg; break;
			case 'k': nkeys = atoi(optarg); break;
			case 'c': chunk = atoll(optarg); break;
			default:
				fprintf(stderr, "usage: %s -b BROKERS -t TOPIC -n COUNT -f VALUE_FILE [-k KEYS] [-c CHUNK]\n", argv[0]);
				return 2;
		}
	}
	if (!topic || !value_file || count <= 0 || nkeys <= 0)
	{
		fprintf(stderr, "raw_producer: -t, -f and a positive -n are required\n");
		return 2;
	}
	value = read_file(value_file, &value_len);

	conf = rd_kafka_conf_new();
	/* the relay's defaults (relay/producer.c default_properties) ... */
	set(conf, "linger.ms", "1");
	set(conf, "message.timeout.ms", "30000");
	set(conf, "socket.keepalive.enable", "true");
	set(conf, "log.connection.close", "false");
	/* ... and the properties it owns */
	set(conf, "bootstrap.servers", brokers);
	set(conf, "enable.idempotence", "true");
	set(conf, "enable.gapless.guarantee", "true");
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);

	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk)
	{
		fprintf(stderr, "raw_producer: %s\n", errstr);
		return 2;
	}

	/* Warm up like the running relay is: connected, idempotent PID acquired, topic metadata known. */
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		fprintf(stderr, "raw_producer: no metadata for %s\n", topic);
		return 1;
	}
	rd_kafka_metadata_destroy(md);
	for (int i = 0; i < 10; i++)
		rd_kafka_poll(rk, 50);

	t0 = now_s();
	while (sent < count)
	{
		long long	end = chunk > 0 ? (sent + chunk < count ? sent + chunk : count) : count;

		while (sent < end)
		{
			char		key[16];
			int			klen = snprintf(key, sizeof(key), "k%d", (int) (rand_r(&seed) % nkeys));
			char		idtext[32];
			int			idlen = snprintf(idtext, sizeof(idtext), "%lld", sent + 1);
			rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
			rd_kafka_resp_err_t err;

			rd_kafka_header_add(hdrs, "outbox-id", -1, idtext, idlen);
			err = rd_kafka_producev(rk,
									RD_KAFKA_V_TOPIC(topic),
									RD_KAFKA_V_KEY(key, klen),
									RD_KAFKA_V_VALUE(value, value_len),
									RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
									RD_KAFKA_V_TIMESTAMP(now_ms_realtime()),
									RD_KAFKA_V_HEADERS(hdrs),
									RD_KAFKA_V_END);
			if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			{
				rd_kafka_headers_destroy(hdrs);
				rd_kafka_poll(rk, 100);
				continue;
			}
			if (err)
			{
				fprintf(stderr, "raw_producer: produce: %s\n", rd_kafka_err2str(err));
				return 1;
			}
			sent++;
			rd_kafka_poll(rk, 0);
		}
		/* wait for this chunk's (or, streaming, all) delivery reports */
		while (reported < sent)
		{
			rd_kafka_poll(rk, 50);
			if (now_s() - t0 > 600)
			{
				fprintf(stderr, "raw_producer: gave up waiting for delivery reports\n");
				return 1;
			}
		}
	}
	t1 = now_s();

	printf("{\"count\": %lld, \"delivered\": %lld, \"failed\": %lld, \"seconds\": %.4f, "
		   "\"events_per_s\": %.1f, \"value_bytes\": %zu, \"chunk\": %lld, \"librdkafka\": \"%s\"%s%s%s}\n",
		   count, delivered, failed, t1 - t0, count / (t1 - t0), value_len, chunk,
		   rd_kafka_version_str(),
		   failed ? ", \"first_error\": \"" : "", failed ? first_error : "", failed ? "\"" : "");
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	return failed ? 1 : 0;
}
