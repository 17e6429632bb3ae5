/*
 * relay_worker.h: the relay background worker of one database, started by
 * the launcher (launcher.c) with its shared-memory slot number as argument.
 */
#ifndef EDU_OUTBOX_RELAY_WORKER_H
#define EDU_OUTBOX_RELAY_WORKER_H

#include "postgres.h"

PGDLLEXPORT void outbox_relay_main(Datum main_arg);

#endif
