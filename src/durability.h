/*
 * durability.h: the relay sends a batch only once the transactions in it
 * can no longer vanish: their commit records are flushed to local WAL and,
 * if edu_outbox.wait_for_standbys asks for it, on the standbys as well.
 * Without this a crash that loses the WAL tail (synchronous_commit = off),
 * or a failover to a standby that was behind, leaves phantom events in Kafka.
 */
#ifndef EDU_OUTBOX_DURABILITY_H
#define EDU_OUTBOX_DURABILITY_H

#include "postgres.h"

/* settings (durability.c) */
extern char *outbox_wait_for_standbys;
extern int	outbox_standby_wait_timeout_ms;
extern void outbox_define_durability_settings(void);

/*
 * Called right after a batch's snapshot is taken: remembers the WAL insert
 * position, which lies past the commit record of every transaction visible
 * in that snapshot.
 */
extern void outbox_durability_mark(void);

/*
 * Called before the first send of a batch's events, outside a transaction:
 * flushes WAL up to the mark and waits for the standbys. Handles SIGHUP by
 * calling reload. False if a shutdown was requested while waiting; the
 * caller then sends nothing.
 */
extern bool outbox_durability_wait(void (*reload) (void));

#endif
