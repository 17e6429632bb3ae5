/*
 * outbox_table.h: where the outbox lives and how it is partitioned.
 *
 * The only place in C that spells the partition layout. The frozen install
 * script sql/edu_outbox--0.1.sql creates the partitions with
 * PARTITION BY LIST ((id / 65536) % 4) and outbox_p0..outbox_p3; these
 * values must match it.
 */
#ifndef EDU_OUTBOX_OUTBOX_TABLE_H
#define EDU_OUTBOX_OUTBOX_TABLE_H

/* Schema of the extension's private tables. */
#define OUTBOX_SCHEMA "edu_outbox"

/* ids per range, and the number of partitions the ranges rotate through */
#define OUTBOX_RANGE 65536
#define OUTBOX_PARTITIONS 4
#define OUTBOX_PARTITION_OF(id) ((int) (((id) / OUTBOX_RANGE) % OUTBOX_PARTITIONS))

#endif
