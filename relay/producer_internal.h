/* Shared between producer.c and delivery.c only. */
#ifndef EDU_OUTBOX_PRODUCER_INTERNAL_H
#define EDU_OUTBOX_PRODUCER_INTERNAL_H

#include <librdkafka/rdkafka.h>

#include "relay.h"

struct RelayProducer
{
	rd_kafka_t *rk;
	RelayChunk *chunk;			/* chunk whose reports are expected */
	uint32_t	generation;		/* bumped per chunk; stale reports are ignored */
	RelayHealth health;
};

/* The delivery report callback (delivery.c), registered by producer.c. */
extern void relay_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *msg,
								  void *opaque);

#endif
