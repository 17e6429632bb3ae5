/* cleanup.h: truncating delivered outbox partitions (see cleanup.c). */
#ifndef EDU_OUTBOX_CLEANUP_H
#define EDU_OUTBOX_CLEANUP_H

/* Runs inside a transaction with SPI connected; true if it truncated. */
extern bool outbox_cleanup(const char *delivered_snapshot);
/* Forgets what was cleaned, e.g. after the extension was recreated. */
extern void outbox_cleanup_forget(void);

#endif
