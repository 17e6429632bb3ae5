/*
 * relay_worker.h: registering and running the relay background worker.
 */
#ifndef EDU_OUTBOX_RELAY_WORKER_H
#define EDU_OUTBOX_RELAY_WORKER_H

#include "postgres.h"

extern void outbox_register_worker(void);
PGDLLEXPORT void outbox_relay_main(Datum main_arg);

#endif
