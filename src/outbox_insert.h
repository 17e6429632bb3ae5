/*
 * outbox_insert.h: the outbox's relations, looked up once per backend, and
 * the executor-free write of one row (outbox_insert.c).
 */
#ifndef EDU_OUTBOX_OUTBOX_INSERT_H
#define EDU_OUTBOX_OUTBOX_INSERT_H

#include "postgres.h"

#include "datatype/timestamp.h"

typedef struct OutboxRels
{
	Oid			seq;			/* edu_outbox.outbox_id_seq */
	Oid			owner;			/* the outbox's owner: events are written with its rights */
} OutboxRels;

/* The id sequence and the owner; raises an error if the outbox is missing. */
extern OutboxRels outbox_rels(void);

/*
 * Writes the row (xid and created_at as their defaults would) into id's
 * partition; false, with nothing written, where only the executor may.
 */
extern bool outbox_insert_direct(int64 id, Datum topic, Datum key, bool key_isnull,
								 Datum payload, Datum headers, bool headers_isnull,
								 TimestampTz *created_at);

#endif
