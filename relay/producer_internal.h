/* Shared by the relay/ files that work on a RelayProducer; not for src/. */
#ifndef EDU_OUTBOX_PRODUCER_INTERNAL_H
#define EDU_OUTBOX_PRODUCER_INTERNAL_H

#include <time.h>

#include <librdkafka/rdkafka.h>

#include "relay.h"

/* Monotonic milliseconds, for the deadlines of blocking calls. */
static inline int64_t
relay_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
