/*
 * limits.c: how large a Kafka record the relay's producer may send, and how
 * large a given event's record can be once framed.
 *
 * The PostgreSQL side checks every event against these at publish time, so
 * an event that librdkafka or a default broker would refuse is never stored.
 */
#include <stdlib.h>
#include <string.h>

#include "relay.h"

static void
find_message_max_bytes(const char *key, const char *value, void *arg)
{
	int		   *limit = arg;

	if (strcmp(key, "message.max.bytes") == 0)
		*limit = atoi(value);
}

int
relay_message_max_bytes(const char *properties)
{
	int			limit = RELAY_MESSAGE_MAX_BYTES_DEFAULT;
	char		errbuf[RELAY_ERRLEN];

	/* a malformed list never reaches here: the setting's check refuses it */
	if (!relay_properties_foreach(properties, find_message_max_bytes, &limit,
								  errbuf, sizeof(errbuf)) || limit <= 0)
		return RELAY_MESSAGE_MAX_BYTES_DEFAULT;
	return limit;
}

size_t
relay_record_max_size(size_t key_len, size_t value_len,
					  size_t header_bytes, size_t nheaders)
{
	/* outbox-id: the name, up to 20 digits, and its framing */
	size_t		outbox_id = strlen("outbox-id") + 20 + RELAY_HEADER_OVERHEAD;

	return RELAY_BATCH_OVERHEAD + RELAY_RECORD_OVERHEAD + key_len + value_len +
		header_bytes + nheaders * RELAY_HEADER_OVERHEAD + outbox_id;
}
