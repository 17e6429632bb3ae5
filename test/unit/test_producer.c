/*
 * test_producer.c: the producer and delivery code (relay/producer.c,
 * relay/delivery.c) against librdkafka's built-in mock cluster
 * (test.mock.num.brokers): delivery reports, reports of an older chunk,
 * records refused locally, destroy with records in flight. No real broker.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "producer_fixtures.h"
#include "tap.h"

static RelayProducer *
mock_producer(const char *extra)
{
	return fixture_producer(NULL, 1, extra, NULL);
}

static bool
wait_settled(RelayProducer *p, const RelayChunk *c, int ms)
{
	for (int waited = 0; waited < ms; waited += 50)
	{
		relay_producer_poll(p, 50);
		if (relay_chunk_settled(c) && c->nsent == c->nrecords)
			return true;
	}
	return false;
}

static void
test_delivery_reports(void)
{
	RelayProducer *p = mock_producer(NULL);
	RelayRecord *r;
	RelayChunk *c;
	bool		all_taken = true;

	if (!check(p != NULL, "mock: producer created"))
		return;
	r = fixture_records("mock-a", 20, 100);
	c = relay_chunk_begin(p, 20);
	check(relay_chunk_send(p, c, r) && c->nsent == 20, "mock: 20 records handed over");
	for (int i = 0; i < 20; i++)
		all_taken &= r[i].value == NULL;
	check(all_taken, "mock: the producer took over every value (no copy left with the caller)");
	check(wait_settled(p, c, 10000), "mock: all delivery reports arrive");
	check(fixture_count(c, RELAY_DELIVERED) == 20 && c->nreported == 20,
		  "mock: 20 delivered, 20 reports");
	fixture_free_records(r, 20);
	relay_producer_destroy(p);
}

static void
test_stale_reports_ignored(void)
{
	RelayProducer *p = mock_producer(NULL);
	RelayRecord *ra,
			   *rb;
	RelayChunk *c;

	if (!check(p != NULL, "stale: producer created"))
		return;
	/* every record to mock-refused fails (in its delivery report) */
	rd_kafka_mock_topic_set_error(rd_kafka_handle_mock_cluster(p->rk), "mock-refused",
								  RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	ra = fixture_records("mock-b", 200, 100);
	rb = fixture_records("mock-refused", 1, 100);
	/* chunk A is given up on before its reports arrive; B reuses index 0 */
	c = relay_chunk_begin(p, 200);
	relay_chunk_send(p, c, ra);
	c = relay_chunk_begin(p, 1);
	relay_chunk_send(p, c, rb);
	/* A's reports (all delivered) arrive now; B's record cannot be delivered */
	for (int i = 0; i < 40; i++)
		relay_producer_poll(p, 50);
	check(c->outcome[0] != RELAY_DELIVERED,
		  "stale: a report of an older chunk does not mark the new chunk's record delivered");
	check(c->nreported <= 1, "stale: the new chunk has at most its own report (%d)", c->nreported);
	fixture_free_records(ra, 200);
	fixture_free_records(rb, 1);
	relay_producer_destroy(p);
}

static void
test_refused_locally(void)
{
	RelayProducer *p = mock_producer("message.max.bytes=1000");
	RelayRecord *r;
	RelayChunk *c;

	if (!check(p != NULL, "refused: producer created"))
		return;
	r = fixture_records("mock-c", 3, 100);
	free(r[1].value);
	r[1].value = malloc(5000);
	memset(r[1].value, 'x', 5000);
	r[1].value_len = 5000;
	c = relay_chunk_begin(p, 3);
	check(!relay_chunk_send(p, c, r) && c->nsent == 1, "refused: sending stops at the too large record");
	check(c->outcome[1] == RELAY_FAILED && c->error[1] == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE &&
		  relay_error_is_permanent(c->error[1]), "refused: it is FAILED with a permanent error");
	check(r[1].value != NULL && r[2].value != NULL && r[0].value == NULL,
		  "refused: values not handed over stay the caller's");
	check(wait_settled(p, c, 10000) || (c->nreported == 1 && c->outcome[0] == RELAY_DELIVERED),
		  "refused: the record before it is delivered");
	fixture_free_records(r, 3);
	relay_producer_destroy(p);
}

static void
test_destroy_in_flight(void)
{
	RelayProducer *p = mock_producer("linger.ms=500");
	RelayRecord *r;
	RelayChunk *c;
	struct timespec t0,
				t1;

	if (!check(p != NULL, "destroy: producer created"))
		return;
	r = fixture_records("mock-d", 500, 1000);
	c = relay_chunk_begin(p, 500);
	relay_chunk_send(p, c, r);
	check(!relay_chunk_settled(c), "destroy: records are still in flight");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* the purge fires reports for everything queued: none may reach the chunk */
	relay_producer_destroy(p);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	check(t1.tv_sec - t0.tv_sec < 10, "destroy: returns with records in flight");
	fixture_free_records(r, 500);
}

int
main(void)
{
	test_delivery_reports();
	test_stale_reports_ignored();
	test_refused_locally();
	test_destroy_in_flight();
	return tap_done();
}
