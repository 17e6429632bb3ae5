/*
 * delivery.c: handing a chunk of records to librdkafka and tracking which of
 * them the broker acknowledged. A record counts as delivered only when its
 * delivery report carries no error and status PERSISTED.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "producer_internal.h"

/* The message opaque packs the chunk generation and the record index. */
#define OPAQUE_MAKE(gen, idx) ((void *) (uintptr_t) (((uint64_t) (gen) << 32) | (uint32_t) (idx)))
#define OPAQUE_GEN(op) ((uint32_t) ((uint64_t) (uintptr_t) (op) >> 32))
#define OPAQUE_IDX(op) ((int) ((uint64_t) (uintptr_t) (op) & 0xffffffffu))

static void
record_failure(RelayChunk *chunk, int idx, int err, const char *text)
{
	chunk->outcome[idx] = RELAY_FAILED;
	chunk->error[idx] = err;
	if (chunk->first_error == 0)
	{
		chunk->first_error = err;
		snprintf(chunk->first_error_text, RELAY_ERRLEN, "%s", text);
	}
}

void
relay_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	RelayProducer *p = opaque;
	RelayChunk *chunk = p->chunk;
	int			idx = OPAQUE_IDX(msg->_private);

	(void) rk;
	if (chunk == NULL || OPAQUE_GEN(msg->_private) != p->generation ||
		idx < 0 || idx >= chunk->nrecords)
		return;					/* report for a chunk already given up on */

	chunk->nreported++;
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
		rd_kafka_message_status(msg) == RD_KAFKA_MSG_STATUS_PERSISTED)
	{
		chunk->outcome[idx] = RELAY_DELIVERED;
		p->health.brokers_down = false;
	}
	else
		record_failure(chunk, idx,
					   msg->err ? msg->err : RD_KAFKA_RESP_ERR__FAIL,
					   msg->err ? rd_kafka_err2str(msg->err) : "not persisted");
}

void
relay_chunk_init(RelayChunk *chunk, int nrecords, RelayOutcome *outcome, int *error)
{
	memset(chunk, 0, sizeof(*chunk));
	chunk->nrecords = nrecords;
	chunk->outcome = outcome;
	chunk->error = error;
	memset(outcome, 0, sizeof(RelayOutcome) * nrecords);
	memset(error, 0, sizeof(int) * nrecords);
}

bool
relay_chunk_send(RelayProducer *p, RelayChunk *chunk, const RelayRecord *records)
{
	if (p->chunk != chunk)
	{
		p->chunk = chunk;
		p->generation++;
	}
	while (chunk->nsent < chunk->nrecords)
	{
		const RelayRecord *r = &records[chunk->nsent];
		char		errbuf[RELAY_ERRLEN];
		rd_kafka_headers_t *hdrs;
		rd_kafka_resp_err_t err;

		if (p->health.fatal)
			return false;
		hdrs = relay_headers_build(r->headers_json, r->id, errbuf, sizeof(errbuf));
		if (hdrs == NULL)
		{
			record_failure(chunk, chunk->nsent, RD_KAFKA_RESP_ERR__BAD_MSG, errbuf);
			return false;
		}
		err = rd_kafka_producev(p->rk,
								RD_KAFKA_V_TOPIC(r->topic),
								RD_KAFKA_V_KEY(r->key, r->key ? r->key_len : 0),
								RD_KAFKA_V_VALUE((void *) r->value, r->value_len),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_TIMESTAMP(r->timestamp_ms),
								RD_KAFKA_V_HEADERS(hdrs),
								RD_KAFKA_V_OPAQUE(OPAQUE_MAKE(p->generation, chunk->nsent)),
								RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		{
			/* headers stay ours when producev fails */
			rd_kafka_headers_destroy(hdrs);
			rd_kafka_poll(p->rk, 100);
			continue;
		}
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			rd_kafka_headers_destroy(hdrs);
			record_failure(chunk, chunk->nsent, err, rd_kafka_err2str(err));
			return false;
		}
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
