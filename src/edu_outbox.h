/*
 * edu_outbox.h: declarations shared by the PostgreSQL side of edu_outbox.
 */
#ifndef EDU_OUTBOX_H
#define EDU_OUTBOX_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"

/* Where the extension keeps its private tables. */
#define OUTBOX_SCHEMA "edu_outbox"

/*
 * The outbox is partitioned by (id / OUTBOX_RANGE) % OUTBOX_PARTITIONS;
 * these must match the install script.
 */
#define OUTBOX_RANGE 65536
#define OUTBOX_PARTITIONS 4
#define OUTBOX_PARTITION_OF(id) ((int) (((id) / OUTBOX_RANGE) % OUTBOX_PARTITIONS))

/* settings.c */
extern char *outbox_brokers;
extern char *outbox_database;
extern char *outbox_kafka_properties;
extern char *outbox_kafka_secrets_file;
extern int	outbox_batch_size;
extern int	outbox_poll_interval_ms;
extern int	outbox_max_payload_size;
extern int	outbox_final_flush_ms;
extern int	outbox_dead_letter_mode;
extern int	outbox_max_databases;
extern void outbox_define_settings(void);

/* shared_state.c (more in shared_state.h) */
extern void outbox_wake_worker_at_commit(void);

/* publish.c */
extern void outbox_check_topic(text *topic);
extern int64 outbox_write_event(Datum topic, Datum payload, Datum key, bool key_isnull,
								Datum headers, bool headers_isnull, TimestampTz *created_at);

/* relay_worker.c: one per relayed database, started by the launcher (launcher.h) */
PGDLLEXPORT void outbox_relay_main(Datum main_arg);

#endif							/* EDU_OUTBOX_H */
