/*
 * launcher.h: the launcher background worker, which runs one relay worker
 * per database named by edu_outbox.database.
 */
#ifndef EDU_OUTBOX_LAUNCHER_H
#define EDU_OUTBOX_LAUNCHER_H

#include "postgres.h"

/* Registers the launcher at server start (shared_preload_libraries only). */
extern void outbox_register_launcher(void);

PGDLLEXPORT void outbox_launcher_main(Datum main_arg);

/* Whether edu_outbox.database names this database (or is '*'). */
extern bool outbox_database_listed(const char *dbname);

#endif
