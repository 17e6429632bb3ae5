/*
 * txn_steps.c: what one Kafka transaction costs, step by step, with the
 * relay's producer settings, for bench/results/EXACTLY_ONCE.md.
 *
 *   txn_steps BROKERS TOPIC POSITION_TOPIC TRANSACTIONS EVENTS_PER_TRANSACTION
 *
 * Per round, like one relay chunk in exactly_once mode: begin_transaction,
 * produce the events (200 bytes, keys spread over the partitions) and wait
 * for every delivery report (this includes AddPartitionsToTxn), produce one
 * position record to POSITION_TOPIC, commit_transaction (flush, its
 * AddPartitionsToTxn, EndTxn), then poll the topic's last stable offsets
 * (read_committed) until they reach the end offsets: the commit markers.
 * The same rounds without a transaction (an idempotent producer, events
 * only) come first as the baseline. Prints medians in ms as JSON, and the
 * CPU time of this process (librdkafka's threads included) per round.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

static int	outstanding = 0;
static int	failed = 0;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void) rk;
	(void) opaque;
	outstanding--;
	if (m->err)
		failed++;
}

static void
set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char		err[512];

	if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "txn_steps: %s=%s: %s\n", k, v, err);
		exit(2);
	}
}

static rd_kafka_t *
producer(const char *brokers, const char *txn_id)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		err[512];
	rd_kafka_t *rk;

	set(conf, "bootstrap.servers", brokers);
	set(conf, "enable.idempotence", "true");
	set(conf, "linger.ms", "1");
	if (txn_id)
		set(conf, "transactional.id", txn_id);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk)
	{
		fprintf(stderr, "txn_steps: %s\n", err);
		exit(2);
	}
	return rk;
}

static void
check(rd_kafka_error_t *e, const char *what)
{
	if (e)
	{
		fprintf(stderr, "txn_steps: %s: %s\n", what, rd_kafka_error_string(e));
		exit(1);
	}
}

/* Produces n events and waits for their delivery reports. */
static void
produce_events(rd_kafka_t *rk, const char *topic, int n, int round)
{
	char		value[200];
	char		key[16];

	memset(value, 'x', sizeof(value));
	for (int i = 0; i < n; i++)
	{
		snprintf(key, sizeof(key), "k%d", (round * n + i) % 1000);
		while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
								 RD_KAFKA_V_VALUE(value, sizeof(value)),
								 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 10);
		outstanding++;
	}
	while (outstanding > 0)
		rd_kafka_poll(rk, 1);
}

/* The sum of the partitions' offsets; read_committed gives the last stable ones. */
static int64_t
offsets(rd_kafka_t *rk, const char *topic, int nparts)
{
	int64_t		sum = 0;

	for (int p = 0; p < nparts; p++)
	{
		int64_t		lo,
					hi;

		if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000))
			return -1;
		sum += hi;
	}
	return sum;
}

/* CPU seconds of this process so far, all threads */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, n, sizeof(double), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	const char *brokers,
			   *topic,
			   *pos_topic;
	int			rounds,
				n,
				nparts = 3;
	char		txn_id[64];
	rd_kafka_t *rk,
			   *reader,
			   *ureader;
	rd_kafka_conf_t *rconf;
	char		err[512];
	double	   *base,
			   *events,
			   *commit,
			   *markers,
			   *total;
	double		cpu0,
				base_cpu,
				txn_cpu = 0;

	if (argc < 6)
	{
		fprintf(stderr, "usage: txn_steps BROKERS TOPIC POSITION_TOPIC TRANSACTIONS EVENTS_PER_TRANSACTION\n");
		return 2;
	}
	brokers = argv[1];
	topic = argv[2];
	pos_topic = argv[3];
	rounds = atoi(argv[4]);
	n = atoi(argv[5]);
	base = calloc(rounds, sizeof(double));
	events = calloc(rounds, sizeof(double));
	commit = calloc(rounds, sizeof(double));
	markers = calloc(rounds, sizeof(double));
	total = calloc(rounds, sizeof(double));

	rconf = rd_kafka_conf_new();
	set(rconf, "bootstrap.servers", brokers);
	set(rconf, "isolation.level", "read_committed");
	reader = rd_kafka_new(RD_KAFKA_CONSUMER, rconf, err, sizeof(err));
	rconf = rd_kafka_conf_new();
	set(rconf, "bootstrap.servers", brokers);
	set(rconf, "isolation.level", "read_uncommitted");
	ureader = rd_kafka_new(RD_KAFKA_CONSUMER, rconf, err, sizeof(err));
	if (!reader || !ureader)
	{
		fprintf(stderr, "txn_steps: %s\n", err);
		return 2;
	}

	/* the baseline: the same events, idempotent, no transaction */
	rk = producer(brokers, NULL);
	produce_events(rk, topic, n, 0);	/* warm-up: metadata, connections */
	cpu0 = cpu_s();
	for (int r = 0; r < rounds; r++)
	{
		double		t0 = now_ms();

		produce_events(rk, topic, n, r);
		base[r] = now_ms() - t0;
	}
	base_cpu = cpu_s() - cpu0;
	rd_kafka_destroy(rk);

	snprintf(txn_id, sizeof(txn_id), "bench-txn-steps-%d", (int) getpid());
	rk = producer(brokers, txn_id);
	check(rd_kafka_init_transactions(rk, 30000), "init_transactions");
	for (int r = -1; r < rounds; r++)
	{
		double		t0,
					t1,
					t2,
					t3;
		if (r == 0)
			cpu0 = cpu_s();
		t0 = now_ms();
		check(rd_kafka_begin_transaction(rk), "begin_transaction");
		produce_events(rk, topic, n, r + 1);
		t1 = now_ms();
		if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(pos_topic), RD_KAFKA_V_KEY(txn_id, strlen(txn_id)),
							  RD_KAFKA_V_VALUE("{\"seq\": 1}", 10),
							  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
			return 1;
		outstanding++;
		check(rd_kafka_commit_transaction(rk, 30000), "commit_transaction");
		t2 = now_ms();
		if (r >= 0)
			txn_cpu += cpu_s() - cpu0;	/* the markers' polling below is not the producer's */
		/*
		 * The markers: the last stable offsets (read first) reach the end
		 * offsets. Both only grow, so equal sums mean every partition's
		 * transaction is settled.
		 */
		for (;;)
		{
			int64_t		lso = offsets(reader, topic, nparts);
			int64_t		end = offsets(ureader, topic, nparts);

			if (lso >= 0 && lso == end)
				break;
			if (now_ms() - t2 > 10000)
			{
				fprintf(stderr, "txn_steps: markers not visible after 10 s\n");
				return 1;
			}
			usleep(1000);
		}
		t3 = now_ms();
		cpu0 = cpu_s();
		if (r < 0)
			continue;			/* warm-up round */
		events[r] = t1 - t0;
		commit[r] = t2 - t1;
		markers[r] = t3 - t2;
		total[r] = t3 - t0;
	}
	rd_kafka_destroy(rk);
	rd_kafka_destroy(reader);
	rd_kafka_destroy(ureader);
	printf("{\"events_per_transaction\": %d, \"transactions\": %d, \"baseline_events_ms\": %.2f, "
		   "\"txn_events_ms\": %.2f, \"txn_position_and_commit_ms\": %.2f, \"txn_markers_visible_ms\": %.2f, "
		   "\"txn_total_ms\": %.2f, \"baseline_cpu_ms\": %.2f, \"txn_cpu_ms\": %.2f, \"failed\": %d, "
		   "\"librdkafka\": \"%s\"}\n",
		   n, rounds, median(base, rounds), median(events, rounds), median(commit, rounds),
		   median(markers, rounds), median(total, rounds), base_cpu * 1e3 / rounds, txn_cpu * 1e3 / rounds,
		   failed, rd_kafka_version_str());
	return 0;
}
