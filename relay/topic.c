/*
 * topic.c: Kafka's rules for topic names, checked before a row is written so
 * that a name the broker would refuse is an error in the caller's
 * transaction, not a message stuck in the outbox.
 */
#include <string.h>

#include "relay.h"

const char *
relay_topic_problem(const char *topic, size_t len)
{
	if (topic == NULL || len == 0)
		return "A Kafka topic name cannot be empty.";
	if (len > RELAY_TOPIC_MAX_LEN)
		return "A Kafka topic name can have at most 249 characters.";
	if ((len == 1 && topic[0] == '.') ||
		(len == 2 && topic[0] == '.' && topic[1] == '.'))
		return "\".\" and \"..\" are not valid Kafka topic names.";
	for (size_t i = 0; i < len; i++)
	{
		char		c = topic[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return "A Kafka topic name may contain only ASCII letters, digits, \".\", \"_\" and \"-\".";
	}
	return NULL;
}
