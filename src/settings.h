/*
 * settings.h: the edu_outbox.* settings (defined in settings.c).
 */
#ifndef EDU_OUTBOX_SETTINGS_H
#define EDU_OUTBOX_SETTINGS_H

extern char *outbox_brokers;
extern char *outbox_database;
extern char *outbox_kafka_properties;
extern char *outbox_kafka_secrets_file;
extern int	outbox_chunk_max_events;
extern int	outbox_chunk_max_bytes;
extern int	outbox_poll_interval_ms;
extern int	outbox_max_payload_size;
extern int	outbox_max_key_size;
extern int	outbox_max_headers_size;
extern int	outbox_max_headers_count;
/* message.max.bytes of the relay's producer, from kafka_properties: the record limit publish checks */
extern int	outbox_message_max_bytes;
extern int	outbox_final_flush_ms;
extern int	outbox_stall_timeout_ms;
extern int	outbox_dead_letter_mode;
extern bool outbox_discard_pending_on_drop;
extern int	outbox_max_databases;
/* edu_outbox.delivery */
#define OUTBOX_DELIVERY_AT_LEAST_ONCE 0
#define OUTBOX_DELIVERY_EXACTLY_ONCE 1
extern int	outbox_delivery;
extern char *outbox_transactional_id;	/* template, see relay_worker.c */
extern char *outbox_position_topic;	/* slots of shared memory: restart only */

/* Called from _PG_init, whether or not the library is preloaded. */
extern void outbox_define_settings(void);

#endif
