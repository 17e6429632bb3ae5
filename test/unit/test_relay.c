/*
 * test_relay.c: unit tests for the pure C relay helpers
 * (relay/topic.c, relay/properties.c, relay/headers.c).
 *
 * No test framework: prints one TAP line per assertion ("ok N - ..." or
 * "not ok N - ..."), then "1..N", and exits non-zero if anything failed.
 * Built and run by test/unit/run.sh.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "relay.h"
#include "tap.h"
#include "producer_fixtures.h"

/* ------------------------------------------------------------------ */
/* topic.c */

static bool
topic_ok(const char *topic, size_t len)
{
	return relay_topic_problem(topic, len) == NULL;
}

static void
test_topic(void)
{
	char		buf[300];
	const char *why;

	why = relay_topic_problem(NULL, 0);
	check(why != NULL && why[0] != '\0', "topic: NULL is invalid with a reason");
	check(!topic_ok(NULL, 5), "topic: NULL with non-zero len is invalid");
	check(!topic_ok("abc", 0), "topic: len 0 is invalid");
	check(!topic_ok("", 0), "topic: empty string is invalid");

	check(!topic_ok(".", 1), "topic: \".\" is invalid");
	check(!topic_ok("..", 2), "topic: \"..\" is invalid");
	check(topic_ok("...", 3), "topic: \"...\" is valid");
	check(topic_ok(".a", 2), "topic: \".a\" is valid");
	check(topic_ok("a.", 2), "topic: \"a.\" is valid");
	check(topic_ok("..x", 3), "topic: \"..x\" is valid");
	/* len, not the NUL terminator, bounds the name */
	check(!topic_ok(".abc", 1), "topic: \".abc\" with len 1 is \".\", invalid");

	memset(buf, 'a', sizeof(buf));
	check(topic_ok(buf, 249), "topic: 249 characters is valid");
	why = relay_topic_problem(buf, 250);
	check(why != NULL, "topic: 250 characters is invalid");
	check(why != NULL && strstr(why, "249") != NULL,
		  "topic: 250-character reason mentions the 249 limit");
	check(!topic_ok(buf, sizeof(buf)), "topic: 300 characters is invalid");
	check(topic_ok(buf, 1), "topic: 1 character is valid");

	check(topic_ok("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", 65),
		  "topic: every allowed character [A-Za-z0-9._-] is valid");
	check(topic_ok("orders.v1_created-2024", 22), "topic: typical name is valid");
	check(topic_ok("-", 1) && topic_ok("_", 1), "topic: \"-\" and \"_\" alone are valid");

	check(!topic_ok("a b", 3), "topic: space is invalid");
	check(!topic_ok("a/b", 3), "topic: '/' is invalid");
	check(!topic_ok("caf\xc3\xa9", 5), "topic: non-ASCII UTF-8 byte is invalid");
	check(!topic_ok("\xff", 1), "topic: byte 0xff is invalid");
	check(!topic_ok("a@b", 3), "topic: '@' is invalid");
	check(!topic_ok("a:b", 3), "topic: ':' is invalid");
	check(!topic_ok("a\tb", 3), "topic: tab is invalid");
	check(!topic_ok("ab\0cd", 5), "topic: embedded NUL within len is invalid");
	check(!topic_ok("abc\0", 4), "topic: trailing NUL within len is invalid");
	check(topic_ok("ab\0cd", 2), "topic: NUL beyond len is not looked at");
}

/* ------------------------------------------------------------------ */
/* properties.c: relay_properties_foreach */

#define MAX_PAIRS 16

typedef struct Collected
{
	int			n;
	char	   *key[MAX_PAIRS];
	char	   *value[MAX_PAIRS];
} Collected;

static void
collect(const char *key, const char *value, void *arg)
{
	Collected  *c = arg;

	if (c->n < MAX_PAIRS)
	{
		c->key[c->n] = strdup(key);
		c->value[c->n] = strdup(value);
	}
	c->n++;
}

static void
collected_reset(Collected *c)
{
	for (int i = 0; i < c->n && i < MAX_PAIRS; i++)
	{
		free(c->key[i]);
		free(c->value[i]);
	}
	memset(c, 0, sizeof(*c));
}

static bool
pair_is(const Collected *c, int i, const char *key, const char *value)
{
	return i < c->n && i < MAX_PAIRS &&
		strcmp(c->key[i], key) == 0 && strcmp(c->value[i], value) == 0;
}

static void
test_properties_foreach(void)
{
	Collected	c = {0};
	char		errbuf[RELAY_ERRLEN];
	bool		ok;

	ok = relay_properties_foreach("a=1; b = two ;;c=x=y", collect, &c, errbuf, sizeof(errbuf));
	check(ok, "foreach: \"a=1; b = two ;;c=x=y\" succeeds");
	check(c.n == 3, "foreach: three pairs (got %d)", c.n);
	check(pair_is(&c, 0, "a", "1"), "foreach: pair 1 is (a,1)");
	check(pair_is(&c, 1, "b", "two"), "foreach: pair 2 is (b,two), trimmed");
	check(pair_is(&c, 2, "c", "x=y"), "foreach: pair 3 is (c,x=y), split at first '='");
	collected_reset(&c);

	ok = relay_properties_foreach("", collect, &c, errbuf, sizeof(errbuf));
	check(ok && c.n == 0, "foreach: empty string calls nothing and returns true");
	collected_reset(&c);

	ok = relay_properties_foreach(NULL, collect, &c, errbuf, sizeof(errbuf));
	check(ok && c.n == 0, "foreach: NULL calls nothing and returns true");
	collected_reset(&c);

	ok = relay_properties_foreach("  ; ;\t;  ", collect, &c, errbuf, sizeof(errbuf));
	check(ok && c.n == 0, "foreach: only separators and blanks calls nothing");
	collected_reset(&c);

	ok = relay_properties_foreach("k=", collect, &c, errbuf, sizeof(errbuf));
	check(ok && c.n == 1 && pair_is(&c, 0, "k", ""), "foreach: \"k=\" gives (k,\"\")");
	collected_reset(&c);

	ok = relay_properties_foreach("  linger.ms\t=\t5  ;", collect, &c, errbuf, sizeof(errbuf));
	check(ok && c.n == 1 && pair_is(&c, 0, "linger.ms", "5"),
		  "foreach: tabs/spaces around key and value are trimmed");
	collected_reset(&c);

	strcpy(errbuf, "");
	ok = relay_properties_foreach("sasl.password", collect, &c, errbuf, sizeof(errbuf));
	check(!ok, "foreach: entry without '=' returns false");
	check(errbuf[0] != '\0', "foreach: entry without '=' fills errbuf");
	check(strstr(errbuf, "sasl.password") == NULL,
		  "foreach: errbuf does not echo the entry without '='");
	check(c.n == 0, "foreach: entry without '=' alone calls nothing");
	collected_reset(&c);

	strcpy(errbuf, "");
	ok = relay_properties_foreach("sasl.username=bob; hunter2 ; linger.ms=5", collect, &c,
								  errbuf, sizeof(errbuf));
	check(!ok, "foreach: secret-looking entry \"hunter2\" returns false");
	check(errbuf[0] != '\0', "foreach: secret-looking entry fills errbuf");
	check(strstr(errbuf, "hunter2") == NULL, "foreach: errbuf does not contain \"hunter2\"");
	check(c.n == 1 && pair_is(&c, 0, "sasl.username", "bob"),
		  "foreach: entries before the bad one are passed, none after it");
	collected_reset(&c);

	strcpy(errbuf, "");
	ok = relay_properties_foreach("=x", collect, &c, errbuf, sizeof(errbuf));
	check(!ok, "foreach: empty name \"=x\" returns false");
	check(errbuf[0] != '\0' && c.n == 0, "foreach: empty name fills errbuf, calls nothing");
	collected_reset(&c);

	strcpy(errbuf, "");
	ok = relay_properties_foreach("a=1;  = x", collect, &c, errbuf, sizeof(errbuf));
	check(!ok && errbuf[0] != '\0', "foreach: blank name \"  = x\" returns false");
	collected_reset(&c);

	/* a tiny errbuf is truncated, not overrun */
	{
		char		small[12];

		memset(small, 'Z', sizeof(small));
		ok = relay_properties_foreach("oops", collect, &c, small, 8);
		check(!ok && strlen(small) == 7 && small[8] == 'Z',
			  "foreach: errbuf is truncated to errlen and NUL-terminated");
		collected_reset(&c);
	}
}

/* ------------------------------------------------------------------ */
/* properties.c: relay_properties_check */

static void
test_properties_check(void)
{
	char		errbuf[RELAY_ERRLEN];
	bool		ok;
	static const char *const owned[][2] = {
		{"bootstrap.servers", "bootstrap.servers=localhost:9092"},
		{"enable.idempotence", "enable.idempotence=false"},
		{"acks", "acks=1"},
		{"transactional.id", "transactional.id=t1"},
		{"enable.gapless.guarantee", "enable.gapless.guarantee=false"},
		{"acks", "topic.acks=0"},
		{"request.required.acks", "topic.request.required.acks=1"},
		{"metadata.broker.list", "metadata.broker.list=localhost:9092"},
		{"request.required.acks", "request.required.acks=0"},
		{"acks", "  acks = all  "},
		{NULL, NULL}
	};

	strcpy(errbuf, "");
	ok = relay_properties_check("linger.ms=5; compression.type=lz4", errbuf, sizeof(errbuf));
	check(ok, "check: \"linger.ms=5; compression.type=lz4\" is accepted (err: %s)", errbuf);
	check(relay_properties_check("", errbuf, sizeof(errbuf)), "check: empty list is accepted");
	check(relay_properties_check(NULL, errbuf, sizeof(errbuf)), "check: NULL list is accepted");

	strcpy(errbuf, "");
	ok = relay_properties_check("no.such.prop=1", errbuf, sizeof(errbuf));
	check(!ok, "check: unknown property \"no.such.prop\" is rejected");
	check(strstr(errbuf, "no.such.prop") != NULL, "check: error names \"no.such.prop\"");

	strcpy(errbuf, "");
	ok = relay_properties_check("linger.ms=abc", errbuf, sizeof(errbuf));
	check(!ok, "check: \"linger.ms=abc\" is rejected");
	check(strstr(errbuf, "linger.ms") != NULL, "check: bad value error names linger.ms");

	strcpy(errbuf, "");
	ok = relay_properties_check("compression.type=zzz", errbuf, sizeof(errbuf));
	check(!ok && errbuf[0] != '\0', "check: \"compression.type=zzz\" is rejected");

	strcpy(errbuf, "");
	ok = relay_properties_check("linger.ms=5; no", errbuf, sizeof(errbuf));
	check(!ok && errbuf[0] != '\0', "check: syntax error is rejected");

	for (int i = 0; owned[i][0]; i++)
	{
		strcpy(errbuf, "");
		ok = relay_properties_check(owned[i][1], errbuf, sizeof(errbuf));
		check(!ok, "check: relay-owned \"%s\" is rejected", owned[i][1]);
		check(strstr(errbuf, owned[i][0]) != NULL,
			  "check: error for \"%s\" mentions %s", owned[i][1], owned[i][0]);
	}

	/* an owned property after a valid one is still caught */
	strcpy(errbuf, "");
	ok = relay_properties_check("linger.ms=5; acks=0", errbuf, sizeof(errbuf));
	check(!ok && strstr(errbuf, "acks") != NULL, "check: owned property after a valid one is rejected");

	/* secrets */
	strcpy(errbuf, "");
	ok = relay_properties_check("sasl.password=s3cr3t", errbuf, sizeof(errbuf));
	check(!ok && strstr(errbuf, "kafka_secrets_file") != NULL && strstr(errbuf, "s3cr3t") == NULL,
		  "check: an inline sasl.password is refused without echoing it (err: %s)", errbuf);
	ok = relay_properties_check("topic.ssl.key.password=s3cr3t", errbuf, sizeof(errbuf));
	check(!ok && strstr(errbuf, "s3cr3t") == NULL, "check: an inline ssl.key.password is refused");
	check(relay_property_is_secret("sasl.password") && !relay_property_is_secret("sasl.username"),
		  "secret: sasl.password is a secret, sasl.username is not");

	{
		static const char *const failing[] = {
			"sasl.password=s3cr3t; linger.ms=abc",
			"sasl.password=s3cr3t; no.such.prop=1",
			"sasl.password=s3cr3t; acks=1",
			"sasl.password=s3cr3t; s3cr3t",
			"linger.ms=abc; sasl.password=s3cr3t",
			"sasl.username=u; sasl.password=s3cr3t; compression.type=zzz",
			/* the failing entry's own value is the secret */
			"sasl.pasword=s3cr3t",
			"linger.ms=s3cr3t",
			NULL
		};

		for (int i = 0; failing[i]; i++)
		{
			strcpy(errbuf, "");
			ok = relay_properties_check(failing[i], errbuf, sizeof(errbuf));
			check(!ok && errbuf[0] != '\0', "check: \"%s\" is rejected", failing[i]);
			check(strstr(errbuf, "s3cr3t") == NULL,
				  "check: error for \"%s\" does not echo the password", failing[i]);
		}
	}
}

/* ------------------------------------------------------------------ */
/* headers.c */

/* True if the last header called name has exactly the len bytes of want. */
static bool
header_is(rd_kafka_headers_t *hdrs, const char *name, const char *want, size_t len)
{
	const void *value = NULL;
	size_t		size = 0;

	if (hdrs == NULL)
		return false;
	if (rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return false;
	if (size != len)
		return false;
	return len == 0 || (value != NULL && memcmp(value, want, len) == 0);
}

static bool
header_is_str(rd_kafka_headers_t *hdrs, const char *name, const char *want)
{
	return header_is(hdrs, name, want, strlen(want));
}

static void
expect_reject(const char *json, const char *what, const char *must_mention)
{
	char		errbuf[RELAY_ERRLEN];
	rd_kafka_headers_t *h;

	strcpy(errbuf, "");
	h = relay_headers_build(json, 1, errbuf, sizeof(errbuf));
	check(h == NULL, "headers: %s returns NULL", what);
	check(errbuf[0] != '\0', "headers: %s sets errbuf", what);
	if (must_mention)
		check(strstr(errbuf, must_mention) != NULL,
			  "headers: %s error mentions %s (err: %s)", what, must_mention, errbuf);
	if (h)
		rd_kafka_headers_destroy(h);
}

static void
test_headers(void)
{
	char		errbuf[RELAY_ERRLEN];
	rd_kafka_headers_t *h;
	const char *name;
	const void *value;
	size_t		size;

	/* NULL json: only outbox-id */
	h = relay_headers_build(NULL, 42, errbuf, sizeof(errbuf));
	check(h != NULL, "headers: NULL json builds headers");
	check(h && rd_kafka_header_cnt(h) == 1, "headers: NULL json gives exactly 1 header");
	check(header_is_str(h, "outbox-id", "42"), "headers: NULL json outbox-id is \"42\"");
	if (h)
		rd_kafka_headers_destroy(h);

	h = relay_headers_build(NULL, 0, errbuf, sizeof(errbuf));
	check(header_is_str(h, "outbox-id", "0"), "headers: id 0 renders as \"0\"");
	if (h)
		rd_kafka_headers_destroy(h);

	/* beyond 2^53: must not go through a double */
	h = relay_headers_build(NULL, INT64_C(9007199254740993), errbuf, sizeof(errbuf));
	check(header_is_str(h, "outbox-id", "9007199254740993"),
		  "headers: id 9007199254740993 renders exactly");
	if (h)
		rd_kafka_headers_destroy(h);

	h = relay_headers_build(NULL, INT64_MAX, errbuf, sizeof(errbuf));
	check(header_is_str(h, "outbox-id", "9223372036854775807"),
		  "headers: id INT64_MAX renders exactly");
	if (h)
		rd_kafka_headers_destroy(h);

	/* object of strings */
	strcpy(errbuf, "");
	h = relay_headers_build("{\"a\":\"x\",\"b\":\"\"}", 7, errbuf, sizeof(errbuf));
	check(h != NULL, "headers: {\"a\":\"x\",\"b\":\"\"} builds (err: %s)", errbuf);
	check(h && rd_kafka_header_cnt(h) == 3, "headers: {\"a\":\"x\",\"b\":\"\"} gives 3 headers");
	check(header_is_str(h, "a", "x"), "headers: header a is \"x\"");
	check(header_is_str(h, "b", ""), "headers: header b is empty");
	check(header_is_str(h, "outbox-id", "7"), "headers: outbox-id is \"7\"");
	check(h && rd_kafka_header_get_all(h, 2, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		  strcmp(name, "outbox-id") == 0,
		  "headers: outbox-id is the last header");
	check(h && rd_kafka_header_get_last(h, "c", &value, &size) == RD_KAFKA_RESP_ERR__NOENT,
		  "headers: no header c");
	if (h)
		rd_kafka_headers_destroy(h);

	/* a user-supplied outbox-id never reaches Kafka: the relay's id is the only one */
	h = relay_headers_build("{\"outbox-id\":\"666\",\"a\":\"x\"}", 8, errbuf, sizeof(errbuf));
	check(h && rd_kafka_header_cnt(h) == 2 && header_is_str(h, "outbox-id", "8") &&
		  rd_kafka_header_get(h, 0, "outbox-id", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		  size == 1 && memcmp(value, "8", 1) == 0,
		  "headers: a user outbox-id header is dropped");
	if (h)
		rd_kafka_headers_destroy(h);

	h = relay_headers_build("{}", 5, errbuf, sizeof(errbuf));
	check(h && rd_kafka_header_cnt(h) == 1 && header_is_str(h, "outbox-id", "5"),
		  "headers: {} gives only outbox-id");
	if (h)
		rd_kafka_headers_destroy(h);

	h = relay_headers_build("{\"k\":\"caf\\u00e9\"}", 5, errbuf, sizeof(errbuf));
	check(header_is_str(h, "k", "caf\xc3\xa9"), "headers: \\u escape is decoded to UTF-8");
	if (h)
		rd_kafka_headers_destroy(h);

	/* escaped NUL inside a value */
	strcpy(errbuf, "");
	h = relay_headers_build("{\"a\":\"x\\u0000y\"}", 3, errbuf, sizeof(errbuf));
	check(h != NULL, "headers: value with \\u0000 builds (err: %s)", errbuf);
	check(header_is(h, "a", "x\0y", 3), "headers: value with \\u0000 keeps length 3 and bytes");
	if (h)
		rd_kafka_headers_destroy(h);

	/* a user header cannot displace the relay's outbox-id as the last one */
	h = relay_headers_build("{\"outbox-id\":\"666\"}", 8, errbuf, sizeof(errbuf));
	check(header_is_str(h, "outbox-id", "8"), "headers: last outbox-id is the relay's, not the user's");
	if (h)
		rd_kafka_headers_destroy(h);

	/* rejections */
	expect_reject("{", "invalid JSON \"{\"", NULL);
	expect_reject("not json", "invalid JSON \"not json\"", NULL);
	expect_reject("", "empty string", NULL);
	expect_reject("[\"a\",\"b\"]", "JSON array", NULL);
	expect_reject("\"str\"", "JSON string", NULL);
	expect_reject("{\"a\":1}", "non-string value {\"a\":1}", "\"a\"");
	expect_reject("{\"a\":null}", "non-string value {\"a\":null}", "\"a\"");
	expect_reject("{\"ok\":\"v\",\"bad\":true}", "later non-string value", "\"bad\"");
	expect_reject("{\"a\":{\"b\":\"c\"}}", "nested object value", "\"a\"");
	expect_reject("{\"a\":[\"x\"]}", "array value", "\"a\"");
	expect_reject("{\"a\":\"x\",\"a\":\"y\"}", "duplicate key", NULL);
}

/* ------------------------------------------------------------------ */
/* properties.c: the secrets file */

/*
 * A password longer than any line buffer (issue 8, finding 7): it is read
 * whole, and no part of it (here the marker at its end) reaches an error
 * text, neither the reader's nor the producer's.
 */
static void
test_long_secret(const char *path)
{
	const char *marker = "LEAKMARK==";
	size_t		len = 8200 + strlen(marker);
	char	   *password = malloc(len + 1);
	char		errbuf[RELAY_ERRLEN];
	Collected	c = {0};
	RelayProducer *p;
	FILE	   *f;
	bool		ok;

	for (size_t i = 0; i < 8200; i++)
		password[i] = 'a' + i % 26;
	strcpy(password + 8200, marker);

	f = fopen(path, "w");
	fprintf(f, "sasl.username=relay\nsasl.password=%s\nsasl.mechanisms=PLAIN\n", password);
	fclose(f);
	errbuf[0] = '\0';
	ok = relay_properties_read_file(path, collect, &c, errbuf, sizeof(errbuf));
	check(ok && c.n == 3, "secrets file: an 8210-byte line is one pair (ok=%d, n=%d)", ok, c.n);
	check(pair_is(&c, 1, "sasl.password", password),
		  "secrets file: the whole 8210-byte password is used");
	check(pair_is(&c, 2, "sasl.mechanisms", "PLAIN"), "secrets file: the line after it is read");
	check(strstr(errbuf, marker) == NULL, "secrets file: the reader echoes no part of the password");
	collected_reset(&c);

	errbuf[0] = '\0';
	p = relay_producer_create("127.0.0.1:1", "security.protocol=SASL_PLAINTEXT", path,
							  NULL, errbuf, sizeof(errbuf));
	check(p != NULL, "secrets file: a producer is created with the long password (%s)",
		  p ? "ok" : "failed");
	check(strstr(errbuf, "LEAKMARK") == NULL, "secrets file: producer errors echo no part of the password");
	relay_producer_destroy(p);

	/* a name librdkafka does not know may be part of a value: never echoed */
	f = fopen(path, "w");
	fprintf(f, "sasl.password=%.20s\n%s=rest\n", password, marker);
	fclose(f);
	errbuf[0] = '\0';
	p = relay_producer_create("127.0.0.1:1", NULL, path, NULL, errbuf, sizeof(errbuf));
	check(p == NULL && strstr(errbuf, "line 2") != NULL,
		  "secrets file: an unknown property is reported by line (%s)", errbuf);
	check(strstr(errbuf, "LEAKMARK") == NULL, "secrets file: an unknown name is not echoed");
	relay_producer_destroy(p);

	/* a known name is, since it says which line to fix */
	f = fopen(path, "w");
	fprintf(f, "sasl.password=x\nsocket.timeout.ms=NOPE%s\n", marker);
	fclose(f);
	errbuf[0] = '\0';
	p = relay_producer_create("127.0.0.1:1", NULL, path, NULL, errbuf, sizeof(errbuf));
	check(p == NULL && strstr(errbuf, "socket.timeout.ms") != NULL,
		  "secrets file: a bad value of a known property names the property (%s)", errbuf);
	check(strstr(errbuf, "LEAKMARK") == NULL && strstr(errbuf, "NOPE") == NULL,
		  "secrets file: the bad value is not echoed");
	relay_producer_destroy(p);
	free(password);
}

/*
 * Defaults the relay sets on its producer: an event for a topic Kafka
 * refuses must not hold back everyone for librdkafka's 30 s (issue 8,
 * finding 4), and message.max.bytes must leave room for an event at the
 * default size limits (finding 3). Both stay overridable.
 */
static void
test_producer_defaults(void)
{
	char		errbuf[RELAY_ERRLEN];
	RelayProducer *p;
	int			wait_ms;

	p = relay_producer_create("127.0.0.1:1", NULL, NULL, NULL, errbuf, sizeof(errbuf));
	wait_ms = atoi(fixture_property(p, "topic.metadata.propagation.max.ms"));
	check(wait_ms > 0 && wait_ms <= 5000,
		  "producer: an unknown topic's events fail within 5 s (topic.metadata.propagation.max.ms=%d)", wait_ms);
	check(atoi(fixture_property(p, "message.max.bytes")) == RELAY_MESSAGE_MAX_BYTES_DEFAULT,
		  "producer: message.max.bytes is the limit publish checks against (%s)",
		  fixture_property(p, "message.max.bytes"));
	check(RELAY_MESSAGE_MAX_BYTES_DEFAULT >=
		  (int) relay_record_max_size(8192, 1000000, 32768, 64),
		  "limits: an event at the default limits fits the producer's message.max.bytes");
	/* the record bound includes its batch's header: a batch of one fits as well */
	check(RELAY_MESSAGE_MAX_BYTES_DEFAULT <= 1048588,
		  "limits: the producer's batches fit a default broker's message.max.bytes");
	relay_producer_destroy(p);

	p = relay_producer_create("127.0.0.1:1",
							  "topic.metadata.propagation.max.ms=20000; message.max.bytes=3000000",
							  NULL, NULL, errbuf, sizeof(errbuf));
	check(atoi(fixture_property(p, "topic.metadata.propagation.max.ms")) == 20000 &&
		  atoi(fixture_property(p, "message.max.bytes")) == 3000000,
		  "producer: both defaults can be overridden");
	relay_producer_destroy(p);
	check(relay_message_max_bytes(NULL) == RELAY_MESSAGE_MAX_BYTES_DEFAULT &&
		  relay_message_max_bytes("linger.ms=5") == RELAY_MESSAGE_MAX_BYTES_DEFAULT &&
		  relay_message_max_bytes("linger.ms=5; message.max.bytes = 2000000") == 2000000,
		  "limits: message.max.bytes is read from the property list");
}

static void
test_secrets_file(void)
{
	char		path[] = "/tmp/edu_outbox_secrets_XXXXXX";
	char		errbuf[RELAY_ERRLEN];
	Collected	c = {0};
	int			fd = mkstemp(path);
	FILE	   *f = fdopen(fd, "w");
	bool		ok;

	fputs("# credentials for the relay\n\n  sasl.username = relay  \nsasl.password=pa;ss=word\n", f);
	fclose(f);
	ok = relay_properties_read_file(path, collect, &c, errbuf, sizeof(errbuf));
	check(ok && c.n == 2, "secrets file: two pairs read, comments and blanks skipped (n=%d)", c.n);
	check(pair_is(&c, 0, "sasl.username", "relay"), "secrets file: values are trimmed");
	check(pair_is(&c, 1, "sasl.password", "pa;ss=word"), "secrets file: a value may hold ';' and '='");
	collected_reset(&c);

	f = fopen(path, "w");
	fputs("sasl.password=fine\nhunter2\n", f);
	fclose(f);
	ok = relay_properties_read_file(path, collect, &c, errbuf, sizeof(errbuf));
	check(!ok && strstr(errbuf, "line 2") != NULL, "secrets file: a bad line is reported by number (%s)", errbuf);
	check(strstr(errbuf, "hunter2") == NULL && strstr(errbuf, "fine") == NULL,
		  "secrets file: the error echoes no value");
	collected_reset(&c);

	test_long_secret(path);

	unlink(path);
	ok = relay_properties_read_file(path, collect, &c, errbuf, sizeof(errbuf));
	check(!ok && strstr(errbuf, path) != NULL, "secrets file: a missing file is an error naming it");
	check(relay_properties_read_file("", collect, &c, errbuf, sizeof(errbuf)) && c.n == 0,
		  "secrets file: an empty path means no file");
}

int
main(void)
{
	test_topic();
	test_properties_foreach();
	test_properties_check();
	test_secrets_file();
	test_producer_defaults();
	test_headers();
	return tap_done();
}
