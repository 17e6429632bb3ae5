/*
 * position_read.c: how long relay_position_read (relay/position.c) takes as
 * the position topic grows, when the key's last record is near the end (the
 * usual case: a relay writes one per chunk) and when it is at the very start
 * (the worst case: another relay's records fill everything after it).
 *
 *   cc -O2 -Irelay -o /tmp/position_read bench/position_read.c relay/{position,transaction,producer,delivery,properties,headers,errors,limits}.c -lrdkafka -ljansson
 *   /tmp/position_read 127.0.0.1:19192 [ROUNDS]
 *
 * Prints one line per topic size and case, the median of ROUNDS (5) reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relay.h"

#define TIMEOUT_MS 60000
#define PER_TXN 1000

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* n records of key in transactions of PER_TXN */
static void
fill(RelayProducer *p, const char *topic, const char *key, int n)
{
	char		errbuf[RELAY_ERRLEN];

	while (n > 0)
	{
		int			k = n < PER_TXN ? n : PER_TXN;

		relay_txn_begin(p, errbuf, sizeof(errbuf));
		for (int i = 0; i < k; i++)
			relay_txn_add_record(p, topic, key, "{\"version\":1,\"filler\":true}", 28,
								 errbuf, sizeof(errbuf));
		if (relay_txn_commit(p, TIMEOUT_MS, errbuf, sizeof(errbuf)) != RELAY_TXN_OK)
		{
			fprintf(stderr, "commit: %s\n", errbuf);
			exit(1);
		}
		n -= k;
	}
}

static double
median_read(const char *brokers, const char *topic, const char *key, int rounds)
{
	double		t[32];
	char		errbuf[RELAY_ERRLEN];

	for (int i = 0; i < rounds; i++)
	{
		char	   *value;
		size_t		len;
		double		t0 = now();
		int			rc = relay_position_read(brokers, NULL, NULL, topic, key, TIMEOUT_MS,
											 &value, &len, errbuf, sizeof(errbuf));

		t[i] = now() - t0;
		if (rc != 1)
		{
			fprintf(stderr, "read %s: %d %s\n", key, rc, errbuf);
			exit(1);
		}
		free(value);
	}
	qsort(t, rounds, sizeof(double), cmp);
	return t[rounds / 2];
}

int
main(int argc, char **argv)
{
	const char *brokers = argc > 1 ? argv[1] : "127.0.0.1:9092";
	int			rounds = argc > 2 ? atoi(argv[2]) : 5;
	static const int sizes[] = {1000, 10000, 100000, 1000000};
	char		errbuf[RELAY_ERRLEN];
	char		topic[64];
	char		txn_id[64];
	RelayProducer *p;
	int			have = 0;

	if (rounds < 1 || rounds > 32)
		rounds = 5;
	snprintf(topic, sizeof(topic), "bench-positions-%ld", (long) time(NULL));
	snprintf(txn_id, sizeof(txn_id), "bench-position-read-%ld", (long) time(NULL));
	p = relay_producer_create(brokers, "linger.ms=20", NULL, txn_id, errbuf, sizeof(errbuf));
	if (p == NULL || relay_txn_init(p, TIMEOUT_MS, errbuf, sizeof(errbuf)) != RELAY_TXN_OK ||
		relay_position_topic_ensure(p, topic, TIMEOUT_MS, errbuf, sizeof(errbuf)) != 0)
	{
		fprintf(stderr, "setup: %s\n", errbuf);
		return 1;
	}
	/* "old": one record at the start, then only others' records */
	fill(p, topic, "old", 1);
	printf("records_in_topic  key_near_end_s  key_at_start_s\n");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
	{
		fill(p, topic, "others", sizes[i] - have - 2);
		/* "recent": a record a few offsets before the end */
		fill(p, topic, "recent", 1);
		have = sizes[i];
		printf("%16d  %14.3f  %14.3f\n", sizes[i],
			   median_read(brokers, topic, "recent", rounds),
			   median_read(brokers, topic, "old", rounds));
		fflush(stdout);
	}
	relay_producer_destroy(p);
	return 0;
}
