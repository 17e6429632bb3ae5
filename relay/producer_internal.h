/* Shared between producer.c and delivery.c only. */
#ifndef EDU_OUTBOX_PRODUCER_INTERNAL_H
#define EDU_OUTBOX_PRODUCER_INTERNAL_H

#include <librdkafka/rdkafka.h>

#include "relay.h"

struct RelayProducer
{
	rd_kafka_t *rk;
	RelayChunk	chunk;			/* the current chunk; arrays grow as needed */
	int			capacity;		/* entries allocated in chunk.outcome/error */
	bool		attached;		/* false: reports are dropped (no chunk, or destroying) */
	uint32_t	generation;		/* bumped per chunk; reports of older ones are dropped */
	RelayHealth health;
	bool		abort_pending;	/* an abort timed out: only abort may go on */
};

/*
 * Opaque of records outside any chunk (the position record of a
 * transaction): generation 0, which chunks never use.
 */
#define RELAY_OPAQUE_NO_CHUNK NULL

/* The delivery report callback (delivery.c), registered by producer.c. */
extern void relay_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *msg,
								  void *opaque);

#endif
