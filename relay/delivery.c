/*
 * delivery.c: handing a batch of records to librdkafka and tracking which of
 * them the broker acknowledged. A record counts as delivered only when its
 * delivery report carries no error and status PERSISTED.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "producer_internal.h"

/* The message opaque packs the batch generation and the record index. */
#define OPAQUE_MAKE(gen, idx) ((void *) (uintptr_t) (((uint64_t) (gen) << 32) | (uint32_t) (idx)))
#define OPAQUE_GEN(op) ((uint32_t) ((uint64_t) (uintptr_t) (op) >> 32))
#define OPAQUE_IDX(op) ((int) ((uint64_t) (uintptr_t) (op) & 0xffffffffu))

static void
record_failure(RelayBatch *batch, int idx, int err, const char *text)
{
	batch->outcome[idx] = RELAY_FAILED;
	batch->error[idx] = err;
	if (batch->first_error == 0)
	{
		batch->first_error = err;
		snprintf(batch->first_error_text, RELAY_ERRLEN, "%s", text);
	}
}

void
relay_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	RelayProducer *p = opaque;
	RelayBatch *batch = p->batch;
	int			idx = OPAQUE_IDX(msg->_private);

	(void) rk;
	if (batch == NULL || OPAQUE_GEN(msg->_private) != p->generation ||
		idx < 0 || idx >= batch->nrecords)
		return;					/* report for a batch already given up on */

	batch->nreported++;
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
		rd_kafka_message_status(msg) == RD_KAFKA_MSG_STATUS_PERSISTED)
	{
		batch->outcome[idx] = RELAY_DELIVERED;
		p->health.brokers_down = false;
	}
	else
		record_failure(batch, idx,
					   msg->err ? msg->err : RD_KAFKA_RESP_ERR__FAIL,
					   msg->err ? rd_kafka_err2str(msg->err) : "not persisted");
}

void
relay_batch_init(RelayBatch *batch, int nrecords, RelayOutcome *outcome, int *error)
{
	memset(batch, 0, sizeof(*batch));
	batch->nrecords = nrecords;
	batch->outcome = outcome;
	batch->error = error;
	memset(outcome, 0, sizeof(RelayOutcome) * nrecords);
	memset(error, 0, sizeof(int) * nrecords);
}

bool
relay_batch_send(RelayProducer *p, RelayBatch *batch, const RelayRecord *records)
{
	if (p->batch != batch)
	{
		p->batch = batch;
		p->generation++;
	}
	while (batch->nsent < batch->nrecords)
	{
		const RelayRecord *r = &records[batch->nsent];
		char		errbuf[RELAY_ERRLEN];
		rd_kafka_headers_t *hdrs;
		rd_kafka_resp_err_t err;

		if (p->health.fatal)
			return false;
		hdrs = relay_headers_build(r->headers_json, r->id, errbuf, sizeof(errbuf));
		if (hdrs == NULL)
		{
			record_failure(batch, batch->nsent, RD_KAFKA_RESP_ERR__BAD_MSG, errbuf);
			return false;
		}
		err = rd_kafka_producev(p->rk,
								RD_KAFKA_V_TOPIC(r->topic),
								RD_KAFKA_V_KEY(r->key, r->key ? r->key_len : 0),
								RD_KAFKA_V_VALUE((void *) r->value, r->value_len),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_TIMESTAMP(r->timestamp_ms),
								RD_KAFKA_V_HEADERS(hdrs),
								RD_KAFKA_V_OPAQUE(OPAQUE_MAKE(p->generation, batch->nsent)),
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
			record_failure(batch, batch->nsent, err, rd_kafka_err2str(err));
			return false;
		}
		batch->nsent++;
		/* serve reports as we go so the queue drains during big batches */
		rd_kafka_poll(p->rk, 0);
	}
	return true;
}

bool
relay_batch_settled(const RelayBatch *batch)
{
	return batch->nreported >= batch->nsent;
}
