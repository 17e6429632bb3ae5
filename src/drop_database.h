/*
 * drop_database.h: lets DROP DATABASE of a relayed database succeed.
 */
#ifndef EDU_OUTBOX_DROP_DATABASE_H
#define EDU_OUTBOX_DROP_DATABASE_H

/* _PG_init (preloaded only): installs the utility hook. */
extern void outbox_drop_database_init(void);

#endif
