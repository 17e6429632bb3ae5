/*
 * capture_trigger.h: column lists and the option check of the capture
 * trigger (capture_trigger.c), used by the ALTER TABLE follower (capture_ddl.c).
 */
#ifndef EDU_OUTBOX_CAPTURE_TRIGGER_H
#define EDU_OUTBOX_CAPTURE_TRIGGER_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/reltrigger.h"
#include "utils/relcache.h"

/* Names of a key=, exclude= or include= list, and back (every name quoted). */
extern List *capture_split_columns(const char *option, const char *list);
extern char *capture_join_columns(List *names);

/* Raises the error the trigger would raise when it fires on rel, if any. */
extern void capture_check_trigger(Relation rel, Trigger *trigger);

#endif
