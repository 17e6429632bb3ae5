/*
 * capture_trigger.h: what capture_ddl.c needs from the capture trigger.
 */
#ifndef CAPTURE_TRIGGER_H
#define CAPTURE_TRIGGER_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/reltrigger.h"
#include "utils/relcache.h"

/* Names of a key=, exclude= or include= list, and back (every name quoted). */
extern List *capture_split_columns(const char *option, const char *list);
extern char *capture_join_columns(List *names);

/* Raises the error the trigger would raise when it fires on rel, if any. */
extern void capture_check_trigger(Relation rel, Trigger *trigger);

#endif							/* CAPTURE_TRIGGER_H */
