/*
 * properties.c: the pass-through list of librdkafka properties
 * ("name=value; name=value"), parsed and validated without a producer.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "relay.h"

/* Properties the relay sets itself; overriding them would break delivery guarantees. */
static const char *const owned_properties[] = {
	"bootstrap.servers", "metadata.broker.list", "enable.idempotence",
	"acks", "request.required.acks", "transactional.id",
	"enable.gapless.guarantee", NULL
};

/* Properties whose values are credentials; kept out of settings (and so out of logs). */
static const char *const secret_properties[] = {
	"sasl.password", "ssl.key.password", "ssl.keystore.password",
	"sasl.oauthbearer.client.secret", "ssl.key.pem", NULL
};

bool
relay_property_is_secret(const char *name)
{
	const char *bare = strncmp(name, "topic.", 6) == 0 ? name + 6 : name;

	for (int i = 0; secret_properties[i]; i++)
		if (strcmp(bare, secret_properties[i]) == 0)
			return true;
	return false;
}

static char *
trim(char *s)
{
	char	   *end;

	while (isspace((unsigned char) *s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char) end[-1]))
		*--end = '\0';
	return s;
}

bool
relay_properties_foreach(const char *list, relay_property_fn fn, void *arg,
						 char *errbuf, size_t errlen)
{
	char	   *copy,
			   *item,
			   *save = NULL;
	bool		ok = true;

	if (list == NULL)
		return true;
	copy = strdup(list);
	if (copy == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	for (item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save))
	{
		char	   *eq,
				   *key,
				   *value;

		item = trim(item);
		if (*item == '\0')
			continue;
		eq = strchr(item, '=');
		if (eq == NULL)
		{
			/* the item may be a secret: name only its position */
			snprintf(errbuf, errlen,
					 "Each entry must have the form name=value; an entry without \"=\" was found.");
			ok = false;
			break;
		}
		*eq = '\0';
		key = trim(item);
		value = trim(eq + 1);
		if (*key == '\0')
		{
			snprintf(errbuf, errlen, "An entry has an empty property name.");
			ok = false;
			break;
		}
		fn(key, value, arg);
	}
	free(copy);
	return ok;
}

typedef struct CheckState
{
	rd_kafka_conf_t *conf;
	char	   *errbuf;
	size_t		errlen;
	bool		failed;
} CheckState;

static void
check_one(const char *key, const char *value, void *arg)
{
	CheckState *st = arg;
	char		rderr[RELAY_ERRLEN];

	/* librdkafka also accepts topic-level names with a "topic." prefix */
	const char *bare = strncmp(key, "topic.", 6) == 0 ? key + 6 : key;

	if (st->failed)
		return;
	if (relay_property_is_secret(key))
	{
		snprintf(st->errbuf, st->errlen,
				 "Property \"%s\" carries a credential: put it in the file named by edu_outbox.kafka_secrets_file, not in a setting.", key);
		st->failed = true;
		return;
	}
	for (int i = 0; owned_properties[i]; i++)
	{
		if (strcmp(bare, owned_properties[i]) == 0)
		{
			snprintf(st->errbuf, st->errlen,
					 "Property \"%s\" is set by edu_outbox itself and cannot be overridden.", key);
			st->failed = true;
			return;
		}
	}
	if (rd_kafka_conf_set(st->conf, key, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK)
	{
		snprintf(st->errbuf, st->errlen, "librdkafka rejected property \"%s\": %s", key, rderr);
		st->failed = true;
	}
}

bool
relay_properties_check(const char *list, char *errbuf, size_t errlen)
{
	CheckState	st;

	st.conf = rd_kafka_conf_new();
	st.errbuf = errbuf;
	st.errlen = errlen;
	st.failed = false;
	if (!relay_properties_foreach(list, check_one, &st, errbuf, errlen))
		st.failed = true;
	rd_kafka_conf_destroy(st.conf);
	return !st.failed;
}

/* True if librdkafka knows a property of this name (an unknown one is never echoed). */
static bool
property_is_known(rd_kafka_conf_t *scratch, const char *name, const char *value)
{
	char		rderr[RELAY_ERRLEN];

	return rd_kafka_conf_set(scratch, name, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_UNKNOWN;
}

/*
 * Lines may be of any length (a password or a PEM key can be long): a fixed
 * buffer would split one and hand its tail on as a line of its own, whose
 * "name" is then part of a secret.
 */
bool
relay_properties_read_file(const char *path, relay_property_fn fn, void *arg,
						   char *errbuf, size_t errlen)
{
	FILE	   *f;
	char	   *line = NULL;
	size_t		cap = 0;
	int			lineno = 0;
	bool		ok = true;
	rd_kafka_conf_t *scratch;

	if (path == NULL || path[0] == '\0')
		return true;
	f = fopen(path, "r");
	if (f == NULL)
	{
		snprintf(errbuf, errlen, "could not open secrets file \"%s\": %s", path, strerror(errno));
		return false;
	}
	scratch = rd_kafka_conf_new();
	while (getline(&line, &cap, f) >= 0)
	{
		char	   *item,
				   *eq,
				   *key,
				   *value;

		lineno++;
		item = trim(line);
		if (*item == '\0' || *item == '#')
			continue;
		eq = strchr(item, '=');
		if (eq == NULL || eq == item)
		{
			snprintf(errbuf, errlen, "line %d of secrets file \"%s\" is not of the form name=value",
					 lineno, path);
			ok = false;
			break;
		}
		*eq = '\0';
		key = trim(item);
		value = trim(eq + 1);
		if (!property_is_known(scratch, key, value))
		{
			snprintf(errbuf, errlen,
					 "line %d of secrets file \"%s\" names a property librdkafka does not know (the name is not shown, as it may be part of a secret)",
					 lineno, path);
			ok = false;
			break;
		}
		fn(key, value, arg);
	}
	if (ok && ferror(f))
	{
		snprintf(errbuf, errlen, "could not read secrets file \"%s\": %s", path, strerror(errno));
		ok = false;
	}
	/* the buffer held secrets: wipe it before it goes back to malloc */
	if (line)
		memset(line, 0, cap);
	free(line);
	rd_kafka_conf_destroy(scratch);
	fclose(f);
	return ok;
}
