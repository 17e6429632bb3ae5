/*
 * publish.h: writing one outbox event (publish.c), shared by
 * outbox_publish() and the capture trigger.
 */
#ifndef EDU_OUTBOX_PUBLISH_H
#define EDU_OUTBOX_PUBLISH_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* Raises an error unless topic is a legal Kafka topic name. */
extern void outbox_check_topic(text *topic);
/* Inserts one event; returns its id and sets *created_at. */
extern int64 outbox_write_event(Datum topic, Datum payload, Datum key, bool key_isnull,
								Datum headers, bool headers_isnull, TimestampTz *created_at);

#endif
