/*
 * dead_letter.h: poison events and the events parked behind them.
 *
 * The worker decides outside any transaction (right after the delivery
 * reports) which events become dead letters; the rows are written in the
 * next cycle's transaction, together with the relay position that moves
 * past them, so a crash can neither lose nor duplicate them.
 */
#ifndef EDU_OUTBOX_DEAD_LETTER_H
#define EDU_OUTBOX_DEAD_LETTER_H

#include "postgres.h"

typedef enum DeadLetterMode
{
	DEAD_LETTER_PARK_KEY,		/* dead-letter it; park later events of its key */
	DEAD_LETTER_SKIP,			/* dead-letter it; later events go on */
	DEAD_LETTER_RETRY			/* no dead letters: retry forever */
} DeadLetterMode;

/* Re-reads the unresolved dead letters (heads). SPI connected. */
extern void outbox_dead_letters_refresh(void);
/* Id of the unresolved dead letter holding back topic/key, or 0. */
extern int64 outbox_dead_letter_head_for(const char *topic, const char *key);
/* Queues a dead letter (parked_behind 0) or a parked event. */
extern void outbox_dead_letter_note(int64 id, uint64 xid, const char *topic,
									const char *key, const char *error,
									int64 parked_behind);
/* Writes what was queued. SPI connected; returns the number of rows. */
extern int	outbox_dead_letters_flush(void);
/* Drops the queue and the cached heads (e.g. after a restart of the batch). */
extern void outbox_dead_letters_forget(void);

#endif
