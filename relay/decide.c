/*
 * decide.c: the meaning of a chunk's delivery reports (see decide.h).
 */
#include <string.h>

#include "decide.h"

static bool
same_key(const char *topic, const char *key, size_t key_len,
		 const char *topic2, const char *key2, size_t key_len2)
{
	return key != NULL && key2 != NULL && key_len == key_len2 &&
		memcmp(key, key2, key_len) == 0 && strcmp(topic, topic2) == 0;
}

int64_t
relay_decide_parked_behind(DeadLetterMode mode, const DecideHead *heads, int nheads,
						   const char *topic, const char *key, size_t key_len)
{
	/* without a key there is no order to keep */
	if (mode != DEAD_LETTER_PARK_KEY || key == NULL)
		return 0;
	for (int i = 0; i < nheads; i++)
		if (same_key(topic, key, key_len, heads[i].topic, heads[i].key, heads[i].key_len))
			return heads[i].id;
	return 0;
}

/* A dead letter made earlier in this chunk also parks its key. */
static int64_t
parked_behind(const DecideInput *in, const DecideOutput *out, int upto)
{
	const DecideEvent *e = &in->events[upto];
	int64_t		head = relay_decide_parked_behind(in->mode, in->heads, in->nheads,
												  e->topic, e->key, e->key_len);

	if (head != 0 || in->mode != DEAD_LETTER_PARK_KEY || e->key == NULL)
		return head;
	for (int i = 0; i < upto; i++)
		if (out->verdict[i] == VERDICT_DEAD_LETTER &&
			same_key(e->topic, e->key, e->key_len,
					 in->events[i].topic, in->events[i].key, in->events[i].key_len))
			return in->events[i].id;
	return 0;
}

DecidePosition
relay_position_skip_done(DecidePosition pos, const int32_t *txn_rows, int ntxns)
{
	while (pos.txn_index < ntxns && pos.done >= txn_rows[pos.txn_index])
	{
		pos.txn_index++;
		pos.done = 0;
		pos.last_id = 0;
	}
	return pos;
}

static void
count_delivered(DecideOutput *out, const char *topic)
{
	int			t;

	for (t = 0; t < out->ntopics; t++)
		if (strcmp(out->topics[t], topic) == 0)
			break;
	if (t == out->ntopics)
	{
		out->topics[t] = topic;
		out->delivered[t] = 0;
		out->ntopics++;
	}
	out->delivered[t]++;
}

void
relay_decide(const DecideInput *in, DecideOutput *out)
{
	DecidePosition pos = in->position;
	int			i;

	out->ntopics = 0;
	out->stuck = -1;
	for (i = 0; i < in->nevents; i++)
	{
		out->verdict[i] = VERDICT_AGAIN;
		out->parked_behind[i] = 0;
	}

	/* the handled prefix */
	for (i = 0; i < in->nevents; i++)
	{
		const DecideEvent *e = &in->events[i];
		int			r = e->record;
		int64_t		head;

		if (r >= 0 && in->outcome[r] == RELAY_DELIVERED)
		{
			out->verdict[i] = VERDICT_DELIVERED;
			continue;
		}
		if (r == DECIDE_RECORD_SETTLED)
		{
			out->verdict[i] = VERDICT_SETTLED;
			continue;
		}
		head = parked_behind(in, out, i);
		if (head != 0)
		{
			out->verdict[i] = VERDICT_PARKED;
			out->parked_behind[i] = head;
			continue;
		}
		if (r < 0 || in->outcome[r] != RELAY_FAILED || in->mode == DEAD_LETTER_RETRY ||
			!relay_error_is_permanent(in->error[r]))
			break;
		out->verdict[i] = VERDICT_DEAD_LETTER;
	}
	out->handled = i;
	if (i < in->nevents)
		out->stuck = i;

	/* the statistics count every acknowledgement, also those after the gap (sent again) */
	for (i = 0; i < in->nevents; i++)
	{
		int			r = in->events[i].record;

		if (r >= 0 && in->outcome[r] == RELAY_DELIVERED)
			count_delivered(out, in->events[i].topic);
	}
	/* only the handled prefix moves the position */
	for (i = 0; i < out->handled; i++)
	{
		const DecideEvent *e = &in->events[i];

		if (e->txn_index != pos.txn_index)
		{
			pos.txn_index = e->txn_index;
			pos.done = 0;
		}
		pos.done++;
		pos.last_id = e->id;
		pos = relay_position_skip_done(pos, in->txn_rows, in->ntxns);
	}
	out->position = relay_position_skip_done(pos, in->txn_rows, in->ntxns);
}
