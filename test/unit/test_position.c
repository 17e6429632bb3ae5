/*
 * test_position.c: the relay's position record (relay/position.c): JSON
 * round trip and malformed input, and, against librdkafka's mock cluster,
 * reading a key's last committed record back and creating the topic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "producer_fixtures.h"
#include "tap.h"

#define TIMEOUT_MS 30000
#define UUID "0b6c1f0e-4b1a-4c8e-9d2f-3a5b7c9d1e2f"

static RelayPosition
sample(void)
{
	RelayPosition p;

	memset(&p, 0, sizeof(p));
	p.seq = 42;
	strcpy(p.state_id, UUID);
	p.delivered_snapshot = strdup("1000:1010:1002,1005");
	p.batch_snapshot = strdup("1000:1020:");
	p.pos_index = 3;
	p.pos_xid = UINT64_C(4294967296) + 1005;	/* an xid8 past the first wraparound */
	p.pos_done = 7;
	p.pos_last_id = INT64_C(9007199254740993);	/* beyond a double's exact integers */
	return p;
}

static void
test_round_trip(void)
{
	RelayPosition in = sample();
	RelayPosition out;
	char		errbuf[RELAY_ERRLEN] = "";
	size_t		len = 0;
	char	   *json = relay_position_encode(&in, &len);

	check(json != NULL && len == strlen(json) && strncmp(json, "{\"version\":1,", 13) == 0,
		  "encode: JSON text that starts with the version (%s)", json ? json : "NULL");
	memset(&out, 0x7f, sizeof(out));
	check(json && relay_position_decode(json, len, &out, errbuf, sizeof(errbuf)),
		  "decode: its own output decodes (%s)", errbuf);
	check(out.seq == 42 && strcmp(out.state_id, UUID) == 0 && out.pos_index == 3 &&
		  out.pos_xid == UINT64_C(4294967296) + 1005 && out.pos_done == 7 &&
		  out.pos_last_id == INT64_C(9007199254740993),
		  "round trip: every number comes back exactly");
	check(strcmp(out.delivered_snapshot, in.delivered_snapshot) == 0 &&
		  out.batch_snapshot && strcmp(out.batch_snapshot, in.batch_snapshot) == 0,
		  "round trip: both snapshots come back");
	relay_position_free(&out);
	check(out.delivered_snapshot == NULL && out.batch_snapshot == NULL, "free: the strings are reset");
	free(json);

	/* no open batch */
	free(in.batch_snapshot);
	in.batch_snapshot = NULL;
	in.pos_index = in.pos_done = 0;
	in.pos_xid = 0;
	in.pos_last_id = 0;
	json = relay_position_encode(&in, &len);
	check(json && strstr(json, "\"batch_snapshot\":null") != NULL, "encode: no batch is null (%s)",
		  json ? json : "NULL");
	check(json && relay_position_decode(json, len, &out, errbuf, sizeof(errbuf)) &&
		  out.batch_snapshot == NULL && strcmp(out.delivered_snapshot, "1000:1010:1002,1005") == 0,
		  "round trip: no batch stays no batch");
	relay_position_free(&out);
	free(json);

	/* decode takes the length, not the NUL */
	json = relay_position_encode(&in, &len);
	json = realloc(json, len + 8);
	memcpy(json + len, "garbage", 8);
	check(relay_position_decode(json, len, &out, errbuf, sizeof(errbuf)),
		  "decode: reads exactly len bytes (%s)", errbuf);
	relay_position_free(&out);
	free(json);

	in.pos_xid = UINT64_MAX;
	check(relay_position_encode(&in, &len) == NULL, "encode: an xid beyond int64 is refused");
	in.pos_xid = 0;
	strcpy(in.state_id, "not-a-uuid");
	check(relay_position_encode(&in, &len) == NULL, "encode: a state_id that is no uuid is refused");
	relay_position_free(&in);
}

static void
test_malformed(void)
{
	static const struct
	{
		const char *json;
		const char *why;
	}			bad[] = {
		{"", "empty"},
		{"not json", "not JSON"},
		{"[1,2]", "an array"},
		{"{\"version\":1,\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0}", "pos_last_id missing"},
		{"{\"version\":2,\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "version 2"},
		{"{\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "no version"},
		{"{\"version\":\"1\",\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "version as a string"},
		{"{\"version\":1,\"seq\":-1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "negative seq"},
		{"{\"version\":1,\"seq\":1.5,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "fractional seq"},
		{"{\"version\":1,\"seq\":1,\"state_id\":\"xyz\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "state_id no uuid"},
		{"{\"version\":1,\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":null,\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "delivered_snapshot null"},
		{"{\"version\":1,\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:3,\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "snapshot with a trailing comma"},
		{"{\"version\":1,\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":\"x\",\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "batch_snapshot garbage"},
		{"{\"version\":1,\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":4294967296,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "pos_index beyond int"},
		{"{\"version\":1,\"seq\":1,\"seq\":2,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}", "duplicate member"},
		{"{\"version\":1,\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0} x", "trailing text"},
	};
	const char *good = "{\"version\":1,\"seq\":1,\"state_id\":\"" UUID "\",\"delivered_snapshot\":\"1:2:\",\"batch_snapshot\":null,\"pos_index\":0,\"pos_xid\":0,\"pos_done\":0,\"pos_last_id\":0}";
	RelayPosition out;
	char		errbuf[RELAY_ERRLEN];

	check(relay_position_decode(good, strlen(good), &out, errbuf, sizeof(errbuf)),
		  "decode: the well-formed baseline decodes");
	relay_position_free(&out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		memset(&out, 0, sizeof(out));
		errbuf[0] = '\0';
		check(!relay_position_decode(bad[i].json, strlen(bad[i].json), &out, errbuf, sizeof(errbuf)) &&
			  errbuf[0] != '\0' && out.delivered_snapshot == NULL,
			  "decode: refused, %s (%s)", bad[i].why, errbuf);
	}
}

/* ---- against the mock cluster ---- */

static RelayProducer *
txn_producer(const char *brokers, const char *txn_id)
{
	return fixture_producer(brokers, 3, NULL, txn_id);
}

/* one transaction with one record of key = value; commit or abort */
static bool
write_txn(RelayProducer *p, const char *topic, const char *key, const char *value, bool commit)
{
	char		errbuf[RELAY_ERRLEN];
	RelayTxnResult r;

	if (relay_txn_begin(p, errbuf, sizeof(errbuf)) != RELAY_TXN_OK ||
		!relay_txn_add_record(p, topic, key, value, strlen(value), errbuf, sizeof(errbuf)))
		return false;
	if (!commit)
	{
		relay_producer_poll(p, 200);	/* let it reach the broker before aborting */
		r = relay_txn_abort(p, TIMEOUT_MS, errbuf, sizeof(errbuf));
	}
	else
		r = relay_txn_commit(p, TIMEOUT_MS, errbuf, sizeof(errbuf));
	if (r != RELAY_TXN_OK)
		fprintf(stderr, "# %s: %s\n", commit ? "commit" : "abort", errbuf);
	return r == RELAY_TXN_OK;
}

static int
read_key(const char *brokers, const char *topic, const char *key, char **value, char *errbuf)
{
	size_t		len;

	*value = NULL;
	errbuf[0] = '\0';
	return relay_position_read(brokers, NULL, NULL, topic, key, TIMEOUT_MS, value, &len,
							   errbuf, RELAY_ERRLEN);
}

static void
test_read(void)
{
	RelayProducer *p = txn_producer(NULL, "relay-position");
	char		brokers[512];
	char		errbuf[RELAY_ERRLEN] = "";
	char	   *value;
	char		v[64];
	int			rc;
	bool		ok = true;

	if (!check(p != NULL, "read: producer created"))
		return;
	snprintf(brokers, sizeof(brokers), "%s",
			 rd_kafka_mock_cluster_bootstraps(rd_kafka_handle_mock_cluster(p->rk)));
	relay_txn_init(p, TIMEOUT_MS, errbuf, sizeof(errbuf));

	/* librdkafka 2.0.2's mock cluster has no CreateTopics: see test/integration */
	rd_kafka_mock_topic_create(rd_kafka_handle_mock_cluster(p->rk), "positions", 1, 3);

	rc = read_key(brokers, "positions", "relay-a", &value, errbuf);
	check(rc == 0 && value == NULL, "read: an empty topic has no position (%d %s)", rc, errbuf);
	rc = read_key(brokers, "no-such-topic", "relay-a", &value, errbuf);
	check(rc == 0, "read: a missing topic has no position (%d %s)", rc, errbuf);

	/* relay-a's positions among many of relay-b's: more than the first window */
	ok &= write_txn(p, "positions", "relay-a", "a-1", true);
	ok &= write_txn(p, "positions", "relay-a", "a-2", true);
	for (int i = 0; i < 300 && ok; i++)
	{
		snprintf(v, sizeof(v), "b-%d", i);
		ok &= write_txn(p, "positions", "relay-b", v, true);
	}
	check(ok, "read: 302 transactions committed");
	rc = read_key(brokers, "positions", "relay-a", &value, errbuf);
	check(rc == 1 && value && strcmp(value, "a-2") == 0,
		  "read: relay-a's last position, 300 records back (beyond the first window) (%d %s %s)", rc, value ? value : "NULL", errbuf);
	free(value);
	rc = read_key(brokers, "positions", "relay-b", &value, errbuf);
	check(rc == 1 && value && strcmp(value, "b-299") == 0,
		  "read: relay-b's last position (%d %s %s)", rc, value ? value : "NULL", errbuf);
	free(value);
	rc = read_key(brokers, "positions", "relay-c", &value, errbuf);
	check(rc == 0 && value == NULL, "read: a key never written has no position (%d %s)", rc, errbuf);

	/* a topic of several partitions (made by someone else): still found, every key */
	rd_kafka_mock_topic_create(rd_kafka_handle_mock_cluster(p->rk), "positions3", 3, 1);
	for (int i = 0; i < 6; i++)
	{
		char		key[16];

		snprintf(key, sizeof(key), "relay-%d", i);
		snprintf(v, sizeof(v), "v-%d", i);
		ok &= write_txn(p, "positions3", key, v, true);
	}
	for (int i = 0; i < 6 && ok; i++)
	{
		char		key[16];

		snprintf(key, sizeof(key), "relay-%d", i);
		snprintf(v, sizeof(v), "v-%d", i);
		rc = read_key(brokers, "positions3", key, &value, errbuf);
		ok &= rc == 1 && value && strcmp(value, v) == 0;
		free(value);
	}
	check(ok, "read: 6 keys in a topic of 3 partitions are all found (%d %s)", rc, errbuf);

	/*
	 * An aborted position must not be read back, but librdkafka 2.0.2's mock
	 * cluster neither writes transaction markers nor filters aborted records
	 * for read_committed: test/integration/txn_broker.c tests that against a
	 * real broker.
	 */

	/* no broker: an error, not "no position" */
	rd_kafka_mock_broker_set_down(rd_kafka_handle_mock_cluster(p->rk), 1);
	rd_kafka_mock_broker_set_down(rd_kafka_handle_mock_cluster(p->rk), 2);
	rd_kafka_mock_broker_set_down(rd_kafka_handle_mock_cluster(p->rk), 3);
	errbuf[0] = '\0';
	rc = relay_position_read(brokers, NULL, NULL, "positions", "relay-a", 2000, &value, &(size_t) {0},
							 errbuf, sizeof(errbuf));
	check(rc == -1 && errbuf[0] != '\0', "read: brokers down is an error (%d %s)", rc, errbuf);
	relay_producer_destroy(p);
}

int
main(void)
{
	test_round_trip();
	test_malformed();
	test_read();
	return tap_done();
}
