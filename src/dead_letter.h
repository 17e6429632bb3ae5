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

#include "../relay/decide.h"

/*
 * Makes the known heads (unresolved dead letters with a key) current. The
 * first call reads them; later calls only check by id which of them were
 * resolved meanwhile (retried or discarded), never re-reading keys or
 * payloads. Call it only when events are about to be sent. SPI connected.
 */
extern void outbox_dead_letters_refresh(void);
/* The known heads, for relay_decide(); valid until the next call here. */
extern const DecideHead *outbox_dead_letter_heads(int *nheads);
/* Queues a dead letter (parked_behind 0) or a parked event. */
extern void outbox_dead_letter_note(int64 id, uint64 xid, const char *topic,
									const char *key, size_t key_len, const char *error,
									int64 parked_behind);
/* Writes what was queued. SPI connected; returns the number of rows. */
extern int	outbox_dead_letters_flush(void);
/*
 * Marks in settled[] which of the n ids already have a dead-letter row
 * (exactly_once mode writes them before its position passes them, so a
 * chunk sent again may contain some). SPI connected.
 */
extern void outbox_dead_letters_lookup(const int64 *ids, int n, bool *settled);
/* Drops the queue and the cached heads (e.g. after a restart of the batch). */
extern void outbox_dead_letters_forget(void);

#endif
