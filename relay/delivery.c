/*
 * delivery.c: handing a chunk of records to librdkafka and tracking which of
 * them the broker acknowledged. A record counts as delivered only when its
 * delivery report carries no error and status PERSISTED.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "producer_internal.h"

/* The message opaque packs the chunk generation and the record index. */
#define OPAQUE_MAKE(gen, idx) ((void *) (uintptr_t) (((uint64_t) (gen) << 32) | (uint32_t) (idx)))
#define OPAQUE_GEN(op) ((uint32_t) ((uint64_t) (uintptr_t) (op) >> 32))
#define OPAQUE_IDX(op) ((int) ((uint64_t) (uintptr_t) (op) & 0xffffffffu))

static void
record_failure(RelayChunk *chunk, int idx, int err)
{
	chunk->outcome[idx] = RELAY_FAILED;
	chunk->error[idx] = err;
}

void
relay_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	RelayProducer *p = opaque;
	RelayChunk *chunk = &p->chunk;
	int			idx = OPAQUE_IDX(msg->_private);

	(void) rk;
	if (msg->_private == RELAY_OPAQUE_NO_CHUNK)
		return;					/* the position record: commit reports its fate */
	if (!p->attached || OPAQUE_GEN(msg->_private) != p->generation ||
		idx < 0 || idx >= chunk->nsent || chunk->outcome[idx] != RELAY_PENDING)
		return;					/* report for a chunk already given up on */

	chunk->nreported++;
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
		rd_kafka_message_status(msg) == RD_KAFKA_MSG_STATUS_PERSISTED)
	{
		chunk->outcome[idx] = RELAY_DELIVERED;
		p->health.brokers_down = false;
	}
	else
		record_failure(chunk, idx, msg->err ? msg->err : RD_KAFKA_RESP_ERR__FAIL);
}

RelayChunk *
relay_chunk_begin(RelayProducer *p, int nrecords)
{
	RelayChunk *chunk = &p->chunk;

	/* from here on, reports of the previous chunk are stale */
	p->generation++;
	/* generation 0 marks records outside any chunk (relay_txn_add_record) */
	if (p->generation == 0)
		p->generation = 1;
	p->attached = true;
	if (nrecords > p->capacity)
	{
		RelayOutcome *outcome = realloc(chunk->outcome, sizeof(RelayOutcome) * nrecords);
		int		   *error;

		if (outcome == NULL)
			return NULL;
		chunk->outcome = outcome;
		error = realloc(chunk->error, sizeof(int) * nrecords);
		if (error == NULL)
			return NULL;
		chunk->error = error;
		p->capacity = nrecords;
	}
	chunk->nrecords = nrecords;
	chunk->nsent = 0;
	chunk->nreported = 0;
	if (nrecords > 0)
	{
		memset(chunk->outcome, 0, sizeof(RelayOutcome) * nrecords);
		memset(chunk->error, 0, sizeof(int) * nrecords);
	}
	return chunk;
}

bool
relay_chunk_send(RelayProducer *p, RelayChunk *chunk, RelayRecord *records)
{
	while (chunk->nsent < chunk->nrecords)
	{
		RelayRecord *r = &records[chunk->nsent];
		char		errbuf[RELAY_ERRLEN];
		rd_kafka_headers_t *hdrs;
		rd_kafka_resp_err_t err;

		if (p->health.fatal)
			return false;
		hdrs = relay_headers_build(r->headers_json, r->id, errbuf, sizeof(errbuf));
		if (hdrs == NULL)
		{
			record_failure(chunk, chunk->nsent, RD_KAFKA_RESP_ERR__BAD_MSG);
			return false;
		}

		/*
		 * F_FREE: librdkafka owns the value from here and frees it when the
		 * record is done with, so the relay never holds a second copy.
		 */
		err = rd_kafka_producev(p->rk,
								RD_KAFKA_V_TOPIC(r->topic),
								RD_KAFKA_V_KEY(r->key, r->key ? r->key_len : 0),
								RD_KAFKA_V_VALUE(r->value, r->value_len),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
								RD_KAFKA_V_TIMESTAMP(r->timestamp_ms),
								RD_KAFKA_V_HEADERS(hdrs),
								RD_KAFKA_V_OPAQUE(OPAQUE_MAKE(p->generation, chunk->nsent)),
								RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		{
			/* headers and value stay ours when producev fails */
			rd_kafka_headers_destroy(hdrs);
			rd_kafka_poll(p->rk, 100);
			continue;
		}
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			rd_kafka_headers_destroy(hdrs);
			record_failure(chunk, chunk->nsent, err);
			return false;
		}
		r->value = NULL;
		chunk->nsent++;
		/* serve reports as we go so the queue drains during big chunks */
		rd_kafka_poll(p->rk, 0);
	}
	return true;
}

bool
relay_chunk_settled(const RelayChunk *chunk)
{
	return chunk->nreported >= chunk->nsent;
}
