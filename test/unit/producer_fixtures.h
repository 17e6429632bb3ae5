/*
 * producer_fixtures.h: what the unit tests of the producer code share:
 * producers on librdkafka's mock cluster, records to send, and a look at
 * a chunk's outcomes or the producer's configuration. Static inline, so a
 * test program that does not use one gets no unused-function warning.
 */
#ifndef EDU_OUTBOX_PRODUCER_FIXTURES_H
#define EDU_OUTBOX_PRODUCER_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "producer_internal.h"

/*
 * A producer on a mock cluster of nbrokers started for it (props may add
 * "; "-separated properties), or, with brokers set, on a mock cluster
 * already running there; txn_id NULL for a plain idempotent producer.
 */
static inline RelayProducer *
fixture_producer(const char *brokers, int nbrokers, const char *props, const char *txn_id)
{
	char		all[256];
	char		errbuf[RELAY_ERRLEN];
	RelayProducer *p;

	snprintf(all, sizeof(all), "test.mock.num.brokers=%d%s%s", nbrokers, props ? "; " : "",
			 props ? props : "");
	p = relay_producer_create(brokers ? brokers : "127.0.0.1:9", brokers ? props : all,
							  NULL, txn_id, errbuf, sizeof(errbuf));
	if (p == NULL)
		fprintf(stderr, "# producer: %s\n", errbuf);
	return p;
}

/* n records to topic with key "k", each value value_len bytes, malloc'ed (the producer takes them over) */
static inline RelayRecord *
fixture_records(const char *topic, int n, size_t value_len)
{
	RelayRecord *r = calloc(n, sizeof(RelayRecord));

	for (int i = 0; i < n; i++)
	{
		r[i].id = i + 1;
		r[i].topic = topic;
		r[i].key = "k";
		r[i].key_len = 1;
		r[i].value = malloc(value_len);
		memset(r[i].value, 'v', value_len);
		r[i].value_len = value_len;
		r[i].timestamp_ms = 1700000000000;
	}
	return r;
}

static inline void
fixture_free_records(RelayRecord *r, int n)
{
	for (int i = 0; i < n; i++)
		free(r[i].value);
	free(r);
}

/* how many of the chunk's records have outcome o */
static inline int
fixture_count(const RelayChunk *c, RelayOutcome o)
{
	int			n = 0;

	for (int i = 0; i < c->nrecords; i++)
		n += c->outcome[i] == o;
	return n;
}

/* The producer's value of a property, as librdkafka will use it ("" if unknown). */
static inline const char *
fixture_property(RelayProducer *p, const char *name)
{
	static char value[256];
	size_t		size = sizeof(value);

	if (p == NULL ||
		rd_kafka_conf_get(rd_kafka_conf(p->rk), name, value, &size) != RD_KAFKA_CONF_OK)
		return "";
	return value;
}

#endif
