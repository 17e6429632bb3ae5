/*
 * kafka_util.c: small Kafka helpers for bench/run.sh, on librdkafka.
 *
 *   kafka_util create BROKERS TOPIC PARTITIONS
 *       creates the topic (replication factor 1) and waits until every
 *       partition has a leader.
 *   kafka_util wait BROKERS TOPIC COUNT TIMEOUT_S
 *       polls the partitions' end offsets every 10 ms until they add up to
 *       COUNT; prints the wall-clock time (epoch seconds) at which they did.
 *   kafka_util offsets BROKERS TOPIC
 *       prints the sum of the partitions' end offsets.
 *   kafka_util consume BROKERS TOPIC OUTFILE
 *       the latency consumer: assigns every partition from the beginning,
 *       prints "ready" on stdout once it is fetching, then writes one line
 *       "OUTBOX_ID RECV_US TS_MS" per record (RECV_US = CLOCK_REALTIME in
 *       microseconds when the record was handed to the application, TS_MS =
 *       the record's CreateTime) until SIGTERM or SIGINT. It reads with
 *       isolation.level=read_committed (librdkafka's default, set explicitly
 *       because bench/run.sh eos compares delivery modes through it).
 *   kafka_util visible BROKERS TOPIC OUTFILE
 *       every 10 ms, the sum of the partitions' last stable offsets (what a
 *       read_committed consumer can read, transaction markers included);
 *       writes "EPOCH_S SUM" to OUTFILE each time the sum changes, until
 *       SIGTERM or SIGINT.
 *   kafka_util count BROKERS TOPIC TIMEOUT_S
 *       reads the topic from the beginning to its end as a read_committed
 *       consumer and prints {"records": N, "distinct_ids": D}: D counts
 *       distinct outbox-id headers, so N - D are duplicates.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

static volatile sig_atomic_t stop = 0;

static void
on_signal(int sig)
{
	(void) sig;
	stop = 1;
}

static double
wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char		err[512];

	if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "kafka_util: %s=%s: %s\n", k, v, err);
		exit(2);
	}
}

static rd_kafka_t *
make(rd_kafka_type_t type, const char *brokers, rd_kafka_conf_t *conf)
{
	char		err[512];
	rd_kafka_t *rk;

	if (!conf)
		conf = rd_kafka_conf_new();
	set(conf, "bootstrap.servers", brokers);
	set(conf, "log.connection.close", "false");
	rk = rd_kafka_new(type, conf, err, sizeof(err));
	if (!rk)
	{
		fprintf(stderr, "kafka_util: %s\n", err);
		exit(2);
	}
	return rk;
}

/* Partition count of topic, 0 if unknown or a partition has no leader yet. */
static int
partitions(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	int			n = 0;

	if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			n = md->topics[0].partition_cnt;
			for (int i = 0; i < md->topics[0].partition_cnt; i++)
				if (md->topics[0].partitions[i].leader < 0)
					n = 0;
		}
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(rkt);
	return n;
}

static int
cmd_create(const char *brokers, const char *topic, int nparts)
{
	rd_kafka_t *rk = make(RD_KAFKA_PRODUCER, brokers, NULL);
	rd_kafka_NewTopic_t *nt;
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;
	char		err[512];

	nt = rd_kafka_NewTopic_new(topic, nparts, 1, err, sizeof(err));
	if (!nt)
	{
		fprintf(stderr, "kafka_util: %s\n", err);
		return 2;
	}
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, 30000);
	if (!ev)
	{
		fprintf(stderr, "kafka_util: CreateTopics timed out\n");
		return 1;
	}
	{
		const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
		size_t		cnt;
		const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);

		if (rd_kafka_event_error(ev))
		{
			fprintf(stderr, "kafka_util: CreateTopics: %s\n", rd_kafka_event_error_string(ev));
			return 1;
		}
		for (size_t i = 0; i < cnt; i++)
			if (rd_kafka_topic_result_error(tr[i]) &&
				rd_kafka_topic_result_error(tr[i]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			{
				fprintf(stderr, "kafka_util: create %s: %s\n", topic,
						rd_kafka_topic_result_error_string(tr[i]));
				return 1;
			}
	}
	rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_queue_destroy(q);
	for (int i = 0; i < 300; i++)
	{
		if (partitions(rk, topic) == nparts)
		{
			rd_kafka_destroy(rk);
			return 0;
		}
		usleep(100000);
	}
	fprintf(stderr, "kafka_util: topic %s has no leaders after 30 s\n", topic);
	return 1;
}

static long long
end_offsets(rd_kafka_t *rk, const char *topic, int nparts)
{
	long long	sum = 0;

	for (int p = 0; p < nparts; p++)
	{
		int64_t		lo,
					hi;

		if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
			return -1;
		sum += hi;
	}
	return sum;
}

static int
cmd_wait(const char *brokers, const char *topic, long long want, double timeout_s, bool print_only)
{
	rd_kafka_t *rk = make(RD_KAFKA_PRODUCER, brokers, NULL);
	int			nparts = 0;
	double		start = wall_s();

	while ((nparts = partitions(rk, topic)) == 0)
	{
		if (wall_s() - start > 30)
		{
			fprintf(stderr, "kafka_util: topic %s not found\n", topic);
			return 1;
		}
		usleep(100000);
	}
	if (print_only)
	{
		printf("%lld\n", end_offsets(rk, topic, nparts));
		rd_kafka_destroy(rk);
		return 0;
	}
	for (;;)
	{
		long long	n = end_offsets(rk, topic, nparts);

		if (n >= want)
		{
			printf("%.6f\n", wall_s());
			rd_kafka_destroy(rk);
			return 0;
		}
		if (wall_s() - start > timeout_s)
		{
			fprintf(stderr, "kafka_util: %s has %lld of %lld records after %.0f s\n",
					topic, n, want, timeout_s);
			printf("timeout %lld\n", n);
			return 1;
		}
		usleep(10000);
	}
}

static int
cmd_consume(const char *brokers, const char *topic, const char *outfile)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *parts;
	FILE	   *out;
	char		group[64];
	int			nparts;
	long long	n = 0;
	double		start = wall_s();

	snprintf(group, sizeof(group), "edu-outbox-bench-%d", (int) getpid());
	set(conf, "group.id", group);
	set(conf, "enable.auto.commit", "false");
	set(conf, "enable.partition.eof", "false");
	/* the broker answers a fetch as soon as one byte is there; this only bounds idle polls */
	set(conf, "fetch.wait.max.ms", "100");
	set(conf, "isolation.level", "read_committed");
	rk = make(RD_KAFKA_CONSUMER, brokers, conf);
	rd_kafka_poll_set_consumer(rk);

	while ((nparts = partitions(rk, topic)) == 0)
	{
		if (wall_s() - start > 30)
		{
			fprintf(stderr, "kafka_util: topic %s not found\n", topic);
			return 1;
		}
		usleep(100000);
	}
	parts = rd_kafka_topic_partition_list_new(nparts);
	for (int p = 0; p < nparts; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	if (rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		fprintf(stderr, "kafka_util: assign failed\n");
		return 1;
	}
	rd_kafka_topic_partition_list_destroy(parts);

	out = fopen(outfile, "w");
	if (!out)
	{
		perror(outfile);
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	/* let the fetchers start (offsets resolved, first fetch in flight) */
	for (int i = 0; i < 10; i++)
	{
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

		if (m)
			rd_kafka_message_destroy(m);	/* a fresh topic has nothing yet */
	}
	printf("ready\n");
	fflush(stdout);

	while (!stop)
	{
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		struct timespec ts;
		rd_kafka_headers_t *hdrs;
		const void *val;
		size_t		len;
		char		id[32];
		rd_kafka_timestamp_type_t tstype;
		int64_t		tsms;

		if (!m)
			continue;
		clock_gettime(CLOCK_REALTIME, &ts);
		if (m->err)
		{
			rd_kafka_message_destroy(m);
			continue;
		}
		id[0] = '\0';
		if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
			rd_kafka_header_get_last(hdrs, "outbox-id", &val, &len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
			len < sizeof(id))
		{
			memcpy(id, val, len);
			id[len] = '\0';
		}
		tsms = rd_kafka_message_timestamp(m, &tstype);
		if (id[0])
			fprintf(out, "%s %lld %lld\n", id,
					(long long) ts.tv_sec * 1000000LL + ts.tv_nsec / 1000, (long long) tsms);
		n++;
		rd_kafka_message_destroy(m);
	}
	fclose(out);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	fprintf(stderr, "kafka_util: consumed %lld records from %s\n", n, topic);
	return 0;
}

/* Waits until the topic has leaders for every partition; its count, or 0 after 30 s. */
static int
await_partitions(rd_kafka_t *rk, const char *topic)
{
	double		start = wall_s();
	int			nparts;

	while ((nparts = partitions(rk, topic)) == 0)
	{
		if (wall_s() - start > 30)
		{
			fprintf(stderr, "kafka_util: topic %s not found\n", topic);
			return 0;
		}
		usleep(100000);
	}
	return nparts;
}

/*
 * ListOffsets carries the client's isolation.level: read_committed asks for
 * the last stable offset, which a transaction's commit marker moves on.
 */
static int
cmd_visible(const char *brokers, const char *topic, const char *outfile)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	FILE	   *out;
	long long	last = -1;
	int			nparts;

	set(conf, "isolation.level", "read_committed");
	rk = make(RD_KAFKA_CONSUMER, brokers, conf);
	if ((nparts = await_partitions(rk, topic)) == 0)
		return 1;
	out = fopen(outfile, "w");
	if (!out)
	{
		perror(outfile);
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready\n");
	fflush(stdout);
	while (!stop)
	{
		long long	n = end_offsets(rk, topic, nparts);
		double		t = wall_s();

		if (n >= 0 && n != last)
		{
			fprintf(out, "%.6f %lld\n", t, n);
			fflush(out);
			last = n;
		}
		usleep(10000);
	}
	fclose(out);
	rd_kafka_destroy(rk);
	return 0;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

static int
cmd_count(const char *brokers, const char *topic, double timeout_s)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *parts;
	char		group[64];
	int			nparts,
				eofs = 0;
	long long	n = 0,
				distinct = 0;
	size_t		nids = 0,
				cap = 1 << 16;
	int64_t    *ids = malloc(sizeof(int64_t) * cap);
	double		start = wall_s();

	snprintf(group, sizeof(group), "edu-outbox-bench-count-%d", (int) getpid());
	set(conf, "group.id", group);
	set(conf, "enable.auto.commit", "false");
	set(conf, "enable.partition.eof", "true");
	set(conf, "isolation.level", "read_committed");
	rk = make(RD_KAFKA_CONSUMER, brokers, conf);
	rd_kafka_poll_set_consumer(rk);
	if ((nparts = await_partitions(rk, topic)) == 0)
		return 1;
	parts = rd_kafka_topic_partition_list_new(nparts);
	for (int p = 0; p < nparts; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	if (rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		fprintf(stderr, "kafka_util: assign failed\n");
		return 1;
	}
	rd_kafka_topic_partition_list_destroy(parts);

	/* each partition reports its end once; the topic is idle by now */
	while (eofs < nparts)
	{
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		rd_kafka_headers_t *hdrs;
		const void *val;
		size_t		len;

		if (wall_s() - start > timeout_s)
		{
			fprintf(stderr, "kafka_util: count of %s timed out after %lld records\n", topic, n);
			return 1;
		}
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			eofs++;
		else if (!m->err)
		{
			n++;
			if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
				rd_kafka_header_get_last(hdrs, "outbox-id", &val, &len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
				len < 32)
			{
				char		id[32];

				memcpy(id, val, len);
				id[len] = '\0';
				if (nids == cap)
					ids = realloc(ids, sizeof(int64_t) * (cap *= 2));
				ids[nids++] = strtoll(id, NULL, 10);
			}
		}
		rd_kafka_message_destroy(m);
	}
	qsort(ids, nids, sizeof(int64_t), cmp_i64);
	for (size_t i = 0; i < nids; i++)
		if (i == 0 || ids[i] != ids[i - 1])
			distinct++;
	printf("{\"records\": %lld, \"distinct_ids\": %lld}\n", n, distinct);
	free(ids);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "create") == 0)
		return cmd_create(argv[2], argv[3], atoi(argv[4]));
	if (argc >= 6 && strcmp(argv[1], "wait") == 0)
		return cmd_wait(argv[2], argv[3], atoll(argv[4]), atof(argv[5]), false);
	if (argc >= 4 && strcmp(argv[1], "offsets") == 0)
		return cmd_wait(argv[2], argv[3], 0, 0, true);
	if (argc >= 5 && strcmp(argv[1], "consume") == 0)
		return cmd_consume(argv[2], argv[3], argv[4]);
	if (argc >= 5 && strcmp(argv[1], "visible") == 0)
		return cmd_visible(argv[2], argv[3], argv[4]);
	if (argc >= 5 && strcmp(argv[1], "count") == 0)
		return cmd_count(argv[2], argv[3], atof(argv[4]));
	fprintf(stderr, "usage: kafka_util create|wait|offsets|consume|visible|count BROKERS TOPIC ...\n");
	return 2;
}
