/*
 * test_decide.c: unit tests of relay/decide.c, the meaning of a chunk's
 * delivery reports. Plain inputs, no Kafka, no PostgreSQL.
 */
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "decide.h"
#include "tap.h"

#define MAXEV 16

/* A chunk under test: events, record outcomes, and the decision's output. */
typedef struct Case
{
	DecideEvent ev[MAXEV];
	RelayOutcome outcome[MAXEV];
	int			error[MAXEV];
	int32_t		rows[MAXEV];
	DecideHead	heads[4];
	DecideInput in;
	DecideVerdict verdict[MAXEV];
	int64_t		parked[MAXEV];
	const char *topics[MAXEV];
	int			delivered[MAXEV];
	DecideOutput out;
} Case;

/* n events with ids 101.., all in transaction 0 (of ntxns), all sent */
static void
setup(Case *c, int n, DeadLetterMode mode)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < n; i++)
	{
		c->ev[i].id = 101 + i;
		c->ev[i].txn_index = 0;
		c->ev[i].topic = "t";
		c->ev[i].key = NULL;
		c->ev[i].record = i;
		c->outcome[i] = RELAY_DELIVERED;
	}
	c->rows[0] = n;
	c->in.events = c->ev;
	c->in.nevents = n;
	c->in.outcome = c->outcome;
	c->in.error = c->error;
	c->in.mode = mode;
	c->in.heads = c->heads;
	c->in.txn_rows = c->rows;
	c->in.ntxns = 1;
	c->out.verdict = c->verdict;
	c->out.parked_behind = c->parked;
	c->out.topics = c->topics;
	c->out.delivered = c->delivered;
}

static void
set_key(Case *c, int i, const char *key)
{
	c->ev[i].key = key;
	c->ev[i].key_len = key ? strlen(key) : 0;
}

static void
test_all_delivered(void)
{
	Case		c;

	setup(&c, 5, DEAD_LETTER_PARK_KEY);
	c.ev[3].topic = "u";
	c.ev[4].topic = "u";
	relay_decide(&c.in, &c.out);
	check(c.out.handled == 5 && c.out.stuck == -1, "all delivered: all handled, none stuck");
	check(c.out.position.txn_index == 1 && c.out.position.done == 0,
		  "all delivered: the transaction is done, position at the next");
	check(c.out.ntopics == 2 && strcmp(c.out.topics[0], "t") == 0 && c.out.delivered[0] == 3 &&
		  strcmp(c.out.topics[1], "u") == 0 && c.out.delivered[1] == 2,
		  "all delivered: per-topic counts 3 and 2");
}

static void
test_gap_stops_position(void)
{
	Case		c;

	setup(&c, 5, DEAD_LETTER_PARK_KEY);
	c.outcome[2] = RELAY_FAILED;
	c.error[2] = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
	relay_decide(&c.in, &c.out);
	check(c.out.handled == 2 && c.out.stuck == 2, "transient failure: the prefix before it is handled");
	check(c.out.position.txn_index == 0 && c.out.position.done == 2 &&
		  c.out.position.last_id == 102, "transient failure: position after event 102");
	check(c.verdict[2] == VERDICT_AGAIN && c.verdict[3] == VERDICT_AGAIN,
		  "transient failure: it and everything after are sent again");
	check(c.out.ntopics == 1 && c.out.delivered[0] == 4,
		  "statistics count acknowledgements after the gap too");

	setup(&c, 3, DEAD_LETTER_PARK_KEY);
	c.outcome[1] = RELAY_PENDING;
	relay_decide(&c.in, &c.out);
	check(c.out.handled == 1 && c.out.stuck == 1, "no report yet: not handled");
}

static void
test_dead_letter_modes(void)
{
	Case		c;

	/* park_key: the poison event is dead-lettered, later events of its key parked */
	setup(&c, 4, DEAD_LETTER_PARK_KEY);
	set_key(&c, 0, "k");
	set_key(&c, 1, "k");
	set_key(&c, 2, "other");
	set_key(&c, 3, "k");
	c.outcome[0] = RELAY_FAILED;
	c.error[0] = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
	c.outcome[1] = RELAY_FAILED;
	c.error[1] = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
	c.ev[3].record = -1;		/* not sent */
	relay_decide(&c.in, &c.out);
	check(c.verdict[0] == VERDICT_DEAD_LETTER, "park_key: a permanent error makes a dead letter");
	check(c.verdict[1] == VERDICT_PARKED && c.parked[1] == 101,
		  "park_key: a later event of the key is parked behind it");
	check(c.verdict[2] == VERDICT_DELIVERED, "park_key: another key goes on");
	check(c.verdict[3] == VERDICT_PARKED && c.parked[3] == 101,
		  "park_key: an unsent event of the key is parked too");
	check(c.out.handled == 4, "park_key: all four are handled");

	/* skip: later events of the key are not parked */
	setup(&c, 2, DEAD_LETTER_SKIP);
	set_key(&c, 0, "k");
	set_key(&c, 1, "k");
	c.outcome[0] = RELAY_FAILED;
	c.error[0] = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
	relay_decide(&c.in, &c.out);
	check(c.verdict[0] == VERDICT_DEAD_LETTER && c.verdict[1] == VERDICT_DELIVERED &&
		  c.out.handled == 2, "skip: dead letter, and the key goes on");

	/* retry: nothing is dead-lettered */
	setup(&c, 2, DEAD_LETTER_RETRY);
	c.outcome[0] = RELAY_FAILED;
	c.error[0] = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
	relay_decide(&c.in, &c.out);
	check(c.out.handled == 0 && c.out.stuck == 0 && c.verdict[0] == VERDICT_AGAIN,
		  "retry: a permanent error holds everything back");

	/* events without key are never parked */
	setup(&c, 2, DEAD_LETTER_PARK_KEY);
	c.outcome[0] = RELAY_FAILED;
	c.error[0] = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
	c.outcome[1] = RELAY_FAILED;
	c.error[1] = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
	relay_decide(&c.in, &c.out);
	check(c.verdict[0] == VERDICT_DEAD_LETTER && c.out.handled == 1,
		  "no key: the next event is not parked, it waits for its own delivery");
}

static void
test_known_heads(void)
{
	Case		c;

	setup(&c, 3, DEAD_LETTER_PARK_KEY);
	c.heads[0] = (DecideHead) {.id = 7, .topic = "t", .key = "k\0x", .key_len = 3};
	c.in.nheads = 1;
	set_key(&c, 0, "k");		/* "k" is not "k\0x": not parked */
	c.ev[1].key = "k\0x";
	c.ev[1].key_len = 3;
	c.ev[1].record = -1;
	c.ev[2].key = "k\0x";
	c.ev[2].key_len = 3;
	c.ev[2].topic = "other-topic";
	relay_decide(&c.in, &c.out);
	check(c.verdict[0] == VERDICT_DELIVERED, "heads: keys compare by bytes and length");
	check(c.verdict[1] == VERDICT_PARKED && c.parked[1] == 7, "heads: parked behind a known dead letter");
	check(c.verdict[2] == VERDICT_DELIVERED, "heads: same key on another topic is not parked");
	check(relay_decide_parked_behind(DEAD_LETTER_PARK_KEY, c.heads, 1, "t", "k\0x", 3) == 7 &&
		  relay_decide_parked_behind(DEAD_LETTER_SKIP, c.heads, 1, "t", "k\0x", 3) == 0 &&
		  relay_decide_parked_behind(DEAD_LETTER_PARK_KEY, c.heads, 1, "t", NULL, 0) == 0,
		  "parked_behind: only park_key parks, and only keyed events");
}

static void
test_position_across_transactions(void)
{
	Case		c;

	/* transactions 0..3 with 2, 0 (vanished), 3 and 1 rows; the chunk starts at 0 after one row */
	setup(&c, 4, DEAD_LETTER_PARK_KEY);
	c.rows[0] = 2;
	c.rows[1] = 0;
	c.rows[2] = 3;
	c.rows[3] = 1;
	c.in.ntxns = 4;
	c.in.position = (DecidePosition) {.txn_index = 0, .done = 1, .last_id = 100};
	c.ev[0].txn_index = 0;
	c.ev[1].txn_index = 2;
	c.ev[2].txn_index = 2;
	c.ev[3].txn_index = 2;
	relay_decide(&c.in, &c.out);
	check(c.out.position.txn_index == 3 && c.out.position.done == 0 && c.out.position.last_id == 0,
		  "position: past a finished transaction and an empty one");

	c.outcome[2] = RELAY_FAILED;
	relay_decide(&c.in, &c.out);
	check(c.out.position.txn_index == 2 && c.out.position.done == 1 && c.out.position.last_id == 102,
		  "position: inside a transaction, after its last handled event");

	c.in.nevents = 0;
	c.in.position = (DecidePosition) {.txn_index = 1, .done = 0, .last_id = 0};
	relay_decide(&c.in, &c.out);
	check(c.out.position.txn_index == 2 && c.out.handled == 0,
		  "position: an empty chunk still moves past a vanished transaction");
	check(relay_position_skip_done(c.in.position, c.rows, 1).txn_index == 1 &&
		  relay_position_skip_done((DecidePosition) {3, 1, 9}, c.rows, 4).txn_index == 4,
		  "skip_done: stops at the end of the batch");
}

/* exactly_once: an event an earlier attempt dead-lettered is handled, not sent, not noted */
static void
test_settled_dead_letters(void)
{
	Case		c;

	setup(&c, 3, DEAD_LETTER_SKIP);
	c.ev[1].record = DECIDE_RECORD_SETTLED;
	c.ev[2].record = 1;
	c.outcome[1] = RELAY_DELIVERED;
	relay_decide(&c.in, &c.out);
	check(c.verdict[1] == VERDICT_SETTLED && c.out.handled == 3 && c.out.stuck == -1,
		  "settled: an event already dead-lettered is handled");
	check(c.out.position.txn_index == 1, "settled: the position moves past it");
	check(c.out.ntopics == 1 && c.out.delivered[0] == 2, "settled: not counted as delivered");
}

int
main(void)
{
	test_all_delivered();
	test_gap_stops_position();
	test_dead_letter_modes();
	test_known_heads();
	test_position_across_transactions();
	test_settled_dead_letters();
	return tap_done();
}
