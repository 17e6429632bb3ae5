/*
 * headers.c: Kafka record headers from the outbox row's headers column
 * (a JSON object of string values), plus the outbox-id header that lets
 * consumers drop duplicates.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "relay.h"

struct rd_kafka_headers_s *
relay_headers_build(const char *headers_json, int64_t outbox_id,
					char *errbuf, size_t errlen)
{
	rd_kafka_headers_t *hdrs;
	char		idtext[32];
	int			idlen;

	idlen = snprintf(idtext, sizeof(idtext), "%" PRId64, outbox_id);

	if (headers_json == NULL)
	{
		hdrs = rd_kafka_headers_new(1);
		rd_kafka_header_add(hdrs, "outbox-id", -1, idtext, idlen);
		return hdrs;
	}
	else
	{
		json_error_t jerr;
		json_t	   *root = json_loads(headers_json, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
		const char *name;
		json_t	   *value;

		if (root == NULL)
		{
			snprintf(errbuf, errlen, "headers are not valid JSON: %s", jerr.text);
			return NULL;
		}
		if (!json_is_object(root))
		{
			snprintf(errbuf, errlen, "headers must be a JSON object");
			json_decref(root);
			return NULL;
		}
		hdrs = rd_kafka_headers_new(json_object_size(root) + 1);
		json_object_foreach(root, name, value)
		{
			if (!json_is_string(value))
			{
				snprintf(errbuf, errlen, "header \"%s\" is not a JSON string", name);
				rd_kafka_headers_destroy(hdrs);
				json_decref(root);
				return NULL;
			}
			/* outbox-id is the relay's: a user value would confuse de-duplication */
			if (strcasecmp(name, "outbox-id") == 0)
				continue;
			rd_kafka_header_add(hdrs, name, -1, json_string_value(value),
								json_string_length(value));
		}
		rd_kafka_header_add(hdrs, "outbox-id", -1, idtext, idlen);
		json_decref(root);
		return hdrs;
	}
}
