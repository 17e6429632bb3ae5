/*
 * test_transaction.c: the transactional producer (relay/transaction.c)
 * against librdkafka's mock cluster (test.mock.num.brokers=3, which speaks
 * the transaction protocol): commit, abort, fencing by a second producer
 * with the same transactional.id, the position record's delivery report,
 * and the timeouts a transactional producer needs. No real broker.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "producer_fixtures.h"
#include "tap.h"

#define TXN_TIMEOUT_MS 30000

static RelayProducer *
txn_producer(const char *brokers, const char *txn_id)
{
	return fixture_producer(brokers, 3, NULL, txn_id);
}

/* n records of a 5-byte value */
static RelayRecord *
make_records(const char *topic, int n)
{
	return fixture_records(topic, n, 5);
}

static const char *
result_name(RelayTxnResult r)
{
	switch (r)
	{
		case RELAY_TXN_OK:
			return "OK";
		case RELAY_TXN_RETRY:
			return "RETRY";
		case RELAY_TXN_ABORTED:
			return "ABORTED";
		case RELAY_TXN_FENCED:
			return "FENCED";
		case RELAY_TXN_FATAL:
			return "FATAL";
	}
	return "?";
}

/* Calls again while the answer is RETRY, as the worker does. */
static RelayTxnResult
init_until_done(RelayProducer *p, char *errbuf, size_t errlen)
{
	RelayTxnResult r;

	for (int i = 0; i < 5; i++)
		if ((r = relay_txn_init(p, TXN_TIMEOUT_MS, errbuf, errlen)) != RELAY_TXN_RETRY)
			return r;
	return r;
}

static RelayTxnResult
commit_until_done(RelayProducer *p, char *errbuf, size_t errlen)
{
	RelayTxnResult r;

	for (int i = 0; i < 5; i++)
		if ((r = relay_txn_commit(p, TXN_TIMEOUT_MS, errbuf, errlen)) != RELAY_TXN_RETRY)
			return r;
	return r;
}

/* A transactional producer with its transactions initialized and one begun; NULL if none could be made. */
static RelayProducer *
begun_txn(const char *txn_id)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p = txn_producer(NULL, txn_id);

	if (!check(p != NULL, "%s: transactional producer created", txn_id))
		return NULL;
	init_until_done(p, errbuf, sizeof(errbuf));
	relay_txn_begin(p, errbuf, sizeof(errbuf));
	return p;
}

/* n new records to topic, sent as a new chunk; *records for the caller to free */
static RelayChunk *
send_new_chunk(RelayProducer *p, const char *topic, int n, RelayRecord **records)
{
	RelayChunk *c = relay_chunk_begin(p, n);

	*records = make_records(topic, n);
	relay_chunk_send(p, c, *records);
	return c;
}

/*
 * A producer whose transaction coordinator (broker 1) is not the leader of
 * topic's one partition (broker 2), so either can be slowed or stopped
 * alone; transactions initialized and one begun. NULL if it cannot be made.
 */
static RelayProducer *
split_cluster_txn(const char *txn_id, const char *topic, rd_kafka_mock_cluster_t **mc)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p = txn_producer(NULL, txn_id);

	if (!check(p != NULL, "%s: transactional producer created", txn_id))
		return NULL;
	*mc = rd_kafka_handle_mock_cluster(p->rk);
	rd_kafka_mock_coordinator_set(*mc, "transaction", txn_id, 1);
	rd_kafka_mock_topic_create(*mc, topic, 1, 1);
	rd_kafka_mock_partition_set_leader(*mc, topic, 0, 2);
	init_until_done(p, errbuf, sizeof(errbuf));
	relay_txn_begin(p, errbuf, sizeof(errbuf));
	return p;
}

/* init, begin, a chunk plus the position record, commit */
static void
test_commit(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p = txn_producer(NULL, "relay-commit");
	RelayRecord *r;
	RelayChunk *c;
	RelayTxnResult res;
	RelayHealth h;

	if (!check(p != NULL, "commit: transactional producer created"))
		return;
	res = init_until_done(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "commit: init_transactions is OK (%s %s)", result_name(res), errbuf);
	res = relay_txn_begin(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "commit: begin is OK (%s %s)", result_name(res), errbuf);

	r = make_records("txn-events", 10);
	c = relay_chunk_begin(p, 10);
	check(relay_chunk_send(p, c, r) && c->nsent == 10, "commit: 10 records handed over");
	check(relay_txn_add_record(p, "txn-positions", "relay-1", "{\"version\":1}", 13,
							   errbuf, sizeof(errbuf)),
		  "commit: the position record is accepted (%s)", errbuf);
	res = commit_until_done(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "commit: commit is OK (%s %s)", result_name(res), errbuf);
	/* commit flushed: every report has been served */
	relay_producer_poll(p, 0);
	check(fixture_count(c, RELAY_DELIVERED) == 10 && c->nreported == 10,
		  "commit: the chunk has exactly its own 10 reports, all delivered (%d delivered, %d reports)",
		  fixture_count(c, RELAY_DELIVERED), c->nreported);

	/* a second transaction on the same producer */
	res = relay_txn_begin(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "commit: a second begin is OK (%s %s)", result_name(res), errbuf);
	check(relay_txn_add_record(p, "txn-positions", "relay-1", "{}", 2, errbuf, sizeof(errbuf)),
		  "commit: a transaction with only the position record");
	res = commit_until_done(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "commit: its commit is OK (%s %s)", result_name(res), errbuf);

	/* begin twice is the worker's bug: the producer is rebuilt */
	relay_txn_begin(p, errbuf, sizeof(errbuf));
	res = relay_txn_begin(p, errbuf, sizeof(errbuf));
	relay_producer_health(p, &h);
	check(res == RELAY_TXN_FATAL && h.fatal,
		  "commit: begin inside an open transaction is FATAL and marks the producer fatal (%s: %s)",
		  result_name(res), errbuf);
	fixture_free_records(r, 10);
	relay_producer_destroy(p);
}

/*
 * The position record's report must not reach the chunk, even when it
 * arrives while a chunk record with the same index is still pending: the
 * chunk topic's leader answers 3 s late, the position topic's at once.
 */
static void
test_position_report_apart(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p = txn_producer(NULL, "relay-apart");
	rd_kafka_mock_cluster_t *mc;
	RelayRecord *r;
	RelayChunk *c;
	RelayTxnResult res;
	int			polled = 0;

	if (!check(p != NULL, "apart: transactional producer created"))
		return;
	mc = rd_kafka_handle_mock_cluster(p->rk);
	rd_kafka_mock_topic_create(mc, "apart-slow", 1, 1);
	rd_kafka_mock_topic_create(mc, "apart-fast", 1, 1);
	rd_kafka_mock_partition_set_leader(mc, "apart-slow", 0, 2);
	rd_kafka_mock_partition_set_leader(mc, "apart-fast", 0, 1);
	rd_kafka_mock_coordinator_set(mc, "transaction", "relay-apart", 1);
	res = init_until_done(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "apart: init is OK (%s %s)", result_name(res), errbuf);
	relay_txn_begin(p, errbuf, sizeof(errbuf));

	/* prime the metadata so the slow broker's delay only hits the produce */
	relay_producer_topic_known(p, "apart-slow", 5000);
	relay_producer_topic_known(p, "apart-fast", 5000);
	rd_kafka_mock_broker_set_rtt(mc, 2, 3000);

	c = send_new_chunk(p, "apart-slow", 1, &r);
	relay_txn_add_record(p, "apart-fast", "relay-1", "pos", 3, errbuf, sizeof(errbuf));
	/* the position's report comes long before the chunk record's */
	while (c->nreported == 0 && polled < 2000)
	{
		relay_producer_poll(p, 50);
		polled += 50;
	}
	check(c->outcome[0] == RELAY_PENDING && c->nreported == 0,
		  "apart: 2 s after the position record was acknowledged, the chunk record is still pending (%d reports)",
		  c->nreported);
	res = commit_until_done(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK && c->outcome[0] == RELAY_DELIVERED && c->nreported == 1,
		  "apart: after the commit, the chunk record has its own report (%s %s)",
		  result_name(res), errbuf);
	fixture_free_records(r, 1);
	relay_producer_destroy(p);
}

/* an aborted transaction fails the chunk's records; the next one goes through */
static void
test_abort(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p = begun_txn("relay-abort");
	RelayRecord *r;
	RelayChunk *c;
	RelayTxnResult res;
	RelayHealth h;

	if (p == NULL)
		return;
	c = send_new_chunk(p, "txn-abort", 5, &r);
	relay_txn_add_record(p, "txn-positions", "relay-1", "x", 1, errbuf, sizeof(errbuf));
	res = relay_txn_abort(p, TXN_TIMEOUT_MS, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "abort: abort is OK (%s %s)", result_name(res), errbuf);
	relay_producer_poll(p, 100);
	check(fixture_count(c, RELAY_DELIVERED) + fixture_count(c, RELAY_FAILED) + fixture_count(c, RELAY_PENDING) == 5 &&
		  c->nreported <= 5, "abort: the chunk has at most its own 5 reports (%d)", c->nreported);
	relay_producer_health(p, &h);
	check(!h.fatal, "abort: the producer stays usable");
	res = relay_txn_begin(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "abort: a new transaction begins (%s %s)", result_name(res), errbuf);
	fixture_free_records(r, 5);
	c = send_new_chunk(p, "txn-abort", 5, &r);
	res = commit_until_done(p, errbuf, sizeof(errbuf));
	relay_producer_poll(p, 0);
	check(res == RELAY_TXN_OK && fixture_count(c, RELAY_DELIVERED) == 5,
		  "abort: the chunk sent again commits (%s, %d delivered)", result_name(res),
		  fixture_count(c, RELAY_DELIVERED));
	fixture_free_records(r, 5);
	relay_producer_destroy(p);
}

/* an abortable error at commit: commit aborts by itself and says ABORTED */
static void
test_commit_aborts(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p = txn_producer(NULL, "relay-abortable");
	rd_kafka_mock_cluster_t *mc;
	RelayRecord *r;
	RelayChunk *c;
	RelayTxnResult res;
	RelayHealth h;

	if (!check(p != NULL, "abortable: transactional producer created"))
		return;
	mc = rd_kafka_handle_mock_cluster(p->rk);
	init_until_done(p, errbuf, sizeof(errbuf));
	relay_txn_begin(p, errbuf, sizeof(errbuf));
	/* the broker refuses the produce: an abortable error for the transaction */
	rd_kafka_mock_push_request_errors(mc, 0 /* ApiKey Produce */, 1,
									  RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	c = send_new_chunk(p, "txn-abortable", 3, &r);
	res = commit_until_done(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_ABORTED, "abortable: commit returns ABORTED (%s %s)",
		  result_name(res), errbuf);
	relay_producer_poll(p, 0);
	check(fixture_count(c, RELAY_DELIVERED) < 3, "abortable: the chunk is not all delivered (%d)",
		  fixture_count(c, RELAY_DELIVERED));
	relay_producer_health(p, &h);
	res = relay_txn_begin(p, errbuf, sizeof(errbuf));
	check(!h.fatal && res == RELAY_TXN_OK,
		  "abortable: the producer goes on with a new transaction (%s %s)", result_name(res), errbuf);
	relay_txn_abort(p, TXN_TIMEOUT_MS, errbuf, sizeof(errbuf));
	fixture_free_records(r, 3);
	relay_producer_destroy(p);
}

/*
 * The abort that commit begins times out (the coordinator answers 3 s late,
 * commit had 1 s): RETRY, and the next commit call finishes the abort
 * instead of being refused as out of place.
 */
static void
test_commit_abort_retried(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	rd_kafka_mock_cluster_t *mc;
	RelayProducer *p = split_cluster_txn("relay-abort-slow", "txn-abort-slow", &mc);
	RelayRecord *r;
	RelayChunk *c;
	RelayTxnResult res;
	RelayHealth h;

	if (p == NULL)
		return;
	rd_kafka_mock_push_request_errors(mc, 0 /* ApiKey Produce */ , 1,
									  RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	c = send_new_chunk(p, "txn-abort-slow", 1, &r);
	for (int i = 0; i < 200 && !relay_chunk_settled(c); i++)
		relay_producer_poll(p, 50);
	check(c->outcome[0] == RELAY_FAILED, "abort retried: the record failed");
	rd_kafka_mock_broker_set_rtt(mc, 1, 3000);
	res = relay_txn_commit(p, 1000, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_RETRY, "abort retried: the first commit call is RETRY (%s %s)",
		  result_name(res), errbuf);
	rd_kafka_mock_broker_set_rtt(mc, 1, 0);
	res = commit_until_done(p, errbuf, sizeof(errbuf));
	relay_producer_health(p, &h);
	check(res == RELAY_TXN_ABORTED && !h.fatal,
		  "abort retried: the next commit call completes the abort (%s %s)", result_name(res), errbuf);
	res = relay_txn_begin(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "abort retried: a new transaction begins (%s %s)", result_name(res), errbuf);
	relay_txn_abort(p, TXN_TIMEOUT_MS, errbuf, sizeof(errbuf));
	fixture_free_records(r, 1);
	relay_producer_destroy(p);
}

/* wait callback: brings the coordinator back on the third call */
typedef struct AbortWait
{
	rd_kafka_mock_cluster_t *mc;
	int			calls;
	int			stop_after;		/* answer false on this call (0: never) */
} AbortWait;

static bool
abort_wait(void *arg)
{
	AbortWait  *w = arg;

	w->calls++;
	if (w->stop_after > 0 && w->calls >= w->stop_after)
		return false;
	if (w->calls == 3)
		rd_kafka_mock_broker_set_up(w->mc, 1);
	return true;
}

/*
 * The coordinator is down while a chunk's transaction is aborted: each abort
 * call times out (RETRY). relay_txn_abort_settled calls again, with the wait
 * callback in between, until the abort completes; the producer stays usable
 * and the next transaction commits. Stopped early, it answers RETRY and says
 * an abort is pending, and only the abort may go on.
 */
static void
test_abort_settled(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	rd_kafka_mock_cluster_t *mc;
	RelayProducer *p = split_cluster_txn("relay-abort-down", "txn-abort-down", &mc);
	AbortWait	w = {0};
	RelayRecord *r;
	RelayChunk *c;
	RelayTxnResult res;
	RelayHealth h;

	if (p == NULL)
		return;
	w.mc = mc;
	c = send_new_chunk(p, "txn-abort-down", 3, &r);
	for (int i = 0; i < 200 && !relay_chunk_settled(c); i++)
		relay_producer_poll(p, 50);
	rd_kafka_mock_broker_set_down(mc, 1);

	/* stopped on the first wait: RETRY, and the abort is still pending */
	w.stop_after = 1;
	res = relay_txn_abort_settled(p, 1000, abort_wait, &w, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_RETRY && relay_txn_abort_pending(p) && w.calls == 1,
		  "abort settled: stopped while the coordinator is down, RETRY and pending (%s, %d calls: %s)",
		  result_name(res), w.calls, errbuf);

	w.stop_after = 0;
	w.calls = 0;
	res = relay_txn_abort_settled(p, 1000, abort_wait, &w, errbuf, sizeof(errbuf));
	relay_producer_health(p, &h);
	check(res == RELAY_TXN_OK && w.calls >= 3 && !relay_txn_abort_pending(p) && !h.fatal,
		  "abort settled: resumed until the coordinator came back (%s after %d waits: %s)",
		  result_name(res), w.calls, errbuf);
	fixture_free_records(r, 3);

	res = relay_txn_begin(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_OK, "abort settled: a new transaction begins (%s %s)",
		  result_name(res), errbuf);
	c = send_new_chunk(p, "txn-abort-down", 3, &r);
	w.calls = 0;
	res = relay_txn_commit_settled(p, TXN_TIMEOUT_MS, abort_wait, &w, errbuf, sizeof(errbuf));
	relay_producer_poll(p, 0);
	check(res == RELAY_TXN_OK && fixture_count(c, RELAY_DELIVERED) == 3,
		  "abort settled: the chunk sent again commits (%s, %d delivered)", result_name(res),
		  fixture_count(c, RELAY_DELIVERED));
	fixture_free_records(r, 3);
	relay_producer_destroy(p);
}

static void
hung(int sig)
{
	static const char msg[] = "not ok - queue full: add_record did not return within 60 s\n";

	(void) sig;
	(void) write(1, msg, sizeof(msg) - 1);
	_exit(1);
}

/* a local queue that stays full: add_record gives up instead of waiting for ever */
static void
test_add_record_queue_full(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p;
	bool		added;

	p = relay_producer_create("127.0.0.1:9", "test.mock.num.brokers=1; queue.buffering.max.messages=1",
							  NULL, "relay-full", errbuf, sizeof(errbuf));
	if (!check(p != NULL, "queue full: producer created (%s)", errbuf))
		return;
	init_until_done(p, errbuf, sizeof(errbuf));
	relay_txn_begin(p, errbuf, sizeof(errbuf));
	/* no broker from now on: the first record stays queued */
	rd_kafka_mock_broker_set_down(rd_kafka_handle_mock_cluster(p->rk), 1);
	relay_txn_add_record(p, "txn-full", "relay-1", "a", 1, errbuf, sizeof(errbuf));
	errbuf[0] = '\0';
	signal(SIGALRM, hung);
	alarm(60);
	added = relay_txn_add_record(p, "txn-full", "relay-1", "b", 1, errbuf, sizeof(errbuf));
	alarm(0);
	check(!added && strstr(errbuf, "txn-full") != NULL,
		  "queue full: add_record returns false (%s)", errbuf);
	relay_producer_destroy(p);
}

/*
 * Fencing as the broker reports it: EndTxn answered with PRODUCER_FENCED.
 * librdkafka 2.0.2's mock cluster does not fence a producer when a second
 * one initializes the same transactional.id, so two real producers fencing
 * each other are tested against a real broker (test/integration).
 */
static void
test_fencing(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p = begun_txn("relay-fence");
	RelayRecord *r;
	RelayTxnResult res;
	RelayHealth h;

	if (p == NULL)
		return;
	(void) send_new_chunk(p, "txn-fence", 3, &r);
	rd_kafka_mock_push_request_errors(rd_kafka_handle_mock_cluster(p->rk),
									  26 /* ApiKey EndTxn */ , 1,
									  RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
	res = commit_until_done(p, errbuf, sizeof(errbuf));
	relay_producer_health(p, &h);
	check(res == RELAY_TXN_FENCED, "fencing: the commit is FENCED (%s %s)",
		  result_name(res), errbuf);
	check(h.fatal, "fencing: the producer's health says fatal (%s)", h.last_error_text);
	res = relay_txn_begin(p, errbuf, sizeof(errbuf));
	check(res == RELAY_TXN_FENCED, "fencing: a fenced producer stays fenced (%s %s)",
		  result_name(res), errbuf);
	fixture_free_records(r, 3);
	relay_producer_destroy(p);
}

/* message.timeout.ms must not outlast transaction.timeout.ms */
static void
test_timeouts(void)
{
	char		errbuf[RELAY_ERRLEN] = "";
	RelayProducer *p;
	int			txn_ms,
				msg_ms;

	p = relay_producer_create("127.0.0.1:1", NULL, NULL, "relay-t", errbuf, sizeof(errbuf));
	txn_ms = atoi(fixture_property(p, "transaction.timeout.ms"));
	msg_ms = atoi(fixture_property(p, "message.timeout.ms"));
	check(p != NULL && txn_ms == RELAY_TRANSACTION_TIMEOUT_MS && msg_ms > 0 && msg_ms <= txn_ms,
		  "timeouts: the defaults are valid for a transactional producer (transaction.timeout.ms=%d, message.timeout.ms=%d)",
		  txn_ms, msg_ms);
	check(strcmp(fixture_property(p, "transactional.id"), "relay-t") == 0,
		  "timeouts: transactional.id is the one given");
	relay_producer_destroy(p);

	p = relay_producer_create("127.0.0.1:1", NULL, NULL, "", errbuf, sizeof(errbuf));
	check(p != NULL && fixture_property(p, "transactional.id")[0] == '\0',
		  "timeouts: an empty transactional id makes an idempotent producer");
	relay_producer_destroy(p);

	p = relay_producer_create("127.0.0.1:1", "transaction.timeout.ms=120000; message.timeout.ms=90000",
							  NULL, "relay-t", errbuf, sizeof(errbuf));
	check(p != NULL && atoi(fixture_property(p, "transaction.timeout.ms")) == 120000,
		  "timeouts: the user may set both consistently (%s)", p ? "ok" : errbuf);
	relay_producer_destroy(p);

	errbuf[0] = '\0';
	p = relay_producer_create("127.0.0.1:1", "transaction.timeout.ms=10000", NULL, "relay-t",
							  errbuf, sizeof(errbuf));
	check(p == NULL && strstr(errbuf, "message.timeout.ms (30000) must not exceed transaction.timeout.ms (10000)") != NULL,
		  "timeouts: a transaction timeout below the message timeout is refused clearly (%s)", errbuf);
	relay_producer_destroy(p);

	errbuf[0] = '\0';
	p = relay_producer_create("127.0.0.1:1", "message.timeout.ms=0", NULL, "relay-t",
							  errbuf, sizeof(errbuf));
	check(p == NULL && strstr(errbuf, "must not exceed") != NULL,
		  "timeouts: an unlimited message timeout is refused (%s)", errbuf);
	relay_producer_destroy(p);

	/* the idempotent producer keeps accepting any message timeout */
	p = relay_producer_create("127.0.0.1:1", "message.timeout.ms=0", NULL, NULL,
							  errbuf, sizeof(errbuf));
	check(p != NULL, "timeouts: without a transactional id there is no such limit");
	relay_producer_destroy(p);

	errbuf[0] = '\0';
	p = relay_producer_create("127.0.0.1:1", "transactional.id=mine", NULL, "relay-t",
							  errbuf, sizeof(errbuf));
	check(p == NULL && strstr(errbuf, "transactional.id") != NULL,
		  "timeouts: the property list still cannot set transactional.id (%s)", errbuf);
	relay_producer_destroy(p);
}

int
main(void)
{
	test_timeouts();
	test_commit();
	test_position_report_apart();
	test_abort();
	test_commit_aborts();
	test_commit_abort_retried();
	test_abort_settled();
	test_add_record_queue_full();
	test_fencing();
	return tap_done();
}
