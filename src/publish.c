/*
 * publish.c: outbox_publish(topic, payload, key, headers), the SQL function
 * applications call inside their own transaction.
 *
 * It validates everything Kafka or the relay would otherwise choke on, so
 * bad input fails the caller's statement instead of becoming an event that
 * can never be delivered, then inserts one outbox row.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "miscadmin.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "outbox_insert.h"
#include "outbox_table.h"
#include "publish.h"
#include "settings.h"
#include "shared_state.h"
#include "../relay/relay.h"

PG_FUNCTION_INFO_V1(outbox_publish);
PG_FUNCTION_INFO_V1(outbox_publish_event);
PG_FUNCTION_INFO_V1(outbox_republish_event);


void
outbox_check_topic(text *topic)
{
	const char *problem = relay_topic_problem(VARDATA_ANY(topic),
											  VARSIZE_ANY_EXHDR(topic));

	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka topic name \"%s\"", text_to_cstring(topic)),
				 errdetail_internal("%s", problem)));
}

#define SEE_README "See \"Raising the size limits\" in the edu_outbox README."

/*
 * An upper bound on the length of the payload's JSON text (JsonbToCString's
 * output), found without printing it: a string prints as at most 6 bytes per
 * byte ("\u0001") plus its quotes, a key adds ": ", every token is allowed
 * ", " before it, and brackets take one byte each. A numeric's text can be
 * far longer than its binary form (1e100000 is a few bytes), so numerics are
 * printed for real; payloads have few of them.
 */
static size_t
payload_text_bound(Jsonb *payload)
{
	JsonbIterator *it = JsonbIteratorInit(&payload->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	size_t		bound = 0;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		bound += 2;				/* ", " */
		switch (tok)
		{
			case WJB_BEGIN_ARRAY:
			case WJB_BEGIN_OBJECT:
			case WJB_END_ARRAY:
			case WJB_END_OBJECT:
				bound += 1;
				break;
			case WJB_KEY:
				bound += 6 * (size_t) v.val.string.len + 2 + 2;
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				switch (v.type)
				{
					case jbvString:
						bound += 6 * (size_t) v.val.string.len + 2;
						break;
					case jbvNumeric:
						bound += strlen(DatumGetCString(DirectFunctionCall1(numeric_out,
																			NumericGetDatum(v.val.numeric))));
						break;
					default:	/* null, true, false; containers come as tokens */
						bound += 5;
						break;
				}
				break;
			default:
				break;
		}
	}
	return bound;
}

/* Returns the payload's size as sent: its JSON text, as the relay reads it. */
static size_t
payload_text_size(Jsonb *payload)
{
	StringInfoData buf;
	size_t		len;

	initStringInfo(&buf);
	(void) JsonbToCString(&buf, &payload->root, VARSIZE(payload));
	len = buf.len;
	pfree(buf.data);
	return len;
}

static void
check_payload_size(size_t len)
{
	if (len > (size_t) outbox_max_payload_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("outbox payload is too large"),
				 errdetail("The payload's JSON text has %zu bytes, more than the limit of %d bytes.",
						   len, outbox_max_payload_size),
				 errhint("Send a reference to large data instead, or raise \"%s\" (and the broker's message size limits).",
						 "edu_outbox.max_payload_size")));
}

static size_t
check_key_size(text *key)
{
	size_t		len = VARSIZE_ANY_EXHDR(key);

	if (len > (size_t) outbox_max_key_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("outbox key is too large"),
				 errdetail("The key has %zu bytes, more than the limit of %d bytes.",
						   len, outbox_max_key_size),
				 errhint("Use a shorter key (a hash of a long one keeps events of one entity together), or raise \"%s\". " SEE_README,
						 "edu_outbox.max_key_size")));
	return len;
}

/*
 * Counts the headers and the bytes of their names and values (what Kafka
 * stores besides framing) and checks both limits. The object's shape was
 * checked before (check_headers) or built by the extension itself.
 */
static size_t
check_headers_size(Jsonb *headers, size_t *nheaders)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	size_t		bytes = 0;
	size_t		count = 0;

	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			count++;
		if ((tok == WJB_KEY || tok == WJB_VALUE) && v.type == jbvString)
			bytes += v.val.string.len;
	}
	if (count > (size_t) outbox_max_headers_count)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("outbox event has too many headers"),
				 errdetail("The event has %zu headers, more than the limit of %d.",
						   count, outbox_max_headers_count),
				 errhint("Put structured data in the payload, or raise \"%s\". " SEE_README,
						 "edu_outbox.max_headers_count")));
	if (bytes > (size_t) outbox_max_headers_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("outbox headers are too large"),
				 errdetail("The header names and values have %zu bytes, more than the limit of %d bytes.",
						   bytes, outbox_max_headers_size),
				 errhint("Put large data in the payload, or raise \"%s\". " SEE_README,
						 "edu_outbox.max_headers_size")));
	*nheaders = count;
	return bytes;
}

/*
 * The whole record must fit the producer's message.max.bytes, or librdkafka
 * refuses it at send time and it becomes a dead letter. With the default
 * limits it always fits; this catches limits raised past the producer's.
 */
static void
check_record_size(size_t payload_len, size_t key_len, size_t header_bytes,
				  size_t nheaders)
{
	size_t		size = relay_record_max_size(key_len, payload_len,
											 header_bytes, nheaders);

	if (size > (size_t) outbox_message_max_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("outbox event is too large for the Kafka producer"),
				 errdetail("The Kafka record would take up to %zu bytes (payload %zu, key %zu, headers %zu, framing and outbox-id %zu), more than the producer's message.max.bytes of %d.",
						   size, payload_len, key_len, header_bytes,
						   size - payload_len - key_len - header_bytes,
						   outbox_message_max_bytes),
				 errhint("Send a smaller event, or raise message.max.bytes in \"%s\" together with the broker's message.max.bytes and the topic's max.message.bytes. " SEE_README,
						 "edu_outbox.kafka_properties")));
}

/*
 * Header names starting with "outbox-" belong to the extension (outbox-id on
 * every record, outbox-retry-of and outbox-replay-of on events it publishes
 * again). Kafka header names are case-sensitive but consumers often are not,
 * so the whole prefix is reserved in any case. reserved_ok is the
 * extension's own path (republish_event); outbox-id stays the relay's even there.
 */
static void
check_headers(Jsonb *headers, bool reserved_ok)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *last_key = NULL;

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outbox headers must be a JSON object"),
				 errdetail("Kafka headers are name/value pairs, given as a JSON object of string values."),
				 errhint("Pass for example '{\"traceparent\": \"00-...\"}'.")));

	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			last_key = pnstrdup(v.val.string.val, v.val.string.len);
			if (pg_strcasecmp(last_key, "outbox-id") == 0 ||
				(!reserved_ok && pg_strncasecmp(last_key, "outbox-", 7) == 0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("outbox header name \"%s\" is reserved", last_key),
						 errdetail("Header names starting with \"outbox-\", in any letter case, are set by edu_outbox itself: outbox-id on every record, outbox-retry-of and outbox-replay-of on events it publishes again."),
						 errhint("Choose another name for the header.")));
		}
		else if (tok == WJB_VALUE && v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("outbox header \"%s\" must have a string value", last_key),
					 errdetail("Kafka header values are strings; convert numbers, booleans and nulls to text or leave the header out.")));
	}
}

/*
 * One INSERT plan per partition: the row goes straight to the partition
 * its id belongs to, skipping tuple routing through the parent.
 */
static SPIPlanPtr
insert_plan_for(int partition)
{
	static SPIPlanPtr plans[OUTBOX_PARTITIONS];
	Oid			argtypes[5] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID};

	if (plans[partition] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(psprintf("INSERT INTO %s.outbox_p%d (id, topic, key, payload, headers) "
												"VALUES ($1, $2, $3, $4, $5) RETURNING created_at",
												OUTBOX_SCHEMA, partition),
									   5, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for outbox insert: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		plans[partition] = plan;
	}
	return plans[partition];
}

/*
 * Checks the sizes of every part of the event and of the whole record, then
 * inserts one outbox row; the topic and headers' shape must already be valid. Shared by outbox_publish, the capture trigger and
 * the outbox_events view. The insert runs as the outbox's owner (like a
 * SECURITY DEFINER function, without the per-call cost of one), so callers
 * need no rights on the private schema.
 */
int64
outbox_write_event(Datum topic, Datum payload, Datum key, bool key_isnull,
				   Datum headers, bool headers_isnull, TimestampTz *created_at)
{
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int64		id;
	int			ret;
	OutboxRels	outbox;
	TimestampTz now;
	Oid			save_userid;
	int			save_sec_context;
	size_t		payload_len;
	bool		payload_exact = false;
	size_t		key_len = 0;
	size_t		header_bytes = 0;
	size_t		nheaders = 0;

	/*
	 * Printing the payload only to measure it costs about as much as the
	 * rest of the call for small events: while an upper bound fits a limit,
	 * the exact size is not needed for it.
	 */
	payload_len = payload_text_bound(DatumGetJsonbP(payload));
	if (payload_len > (size_t) outbox_max_payload_size)
	{
		payload_len = payload_text_size(DatumGetJsonbP(payload));
		payload_exact = true;
		check_payload_size(payload_len);
	}
	if (!key_isnull)
		key_len = check_key_size(DatumGetTextPP(key));
	if (!headers_isnull)
		header_bytes = check_headers_size(DatumGetJsonbP(headers), &nheaders);
	if (relay_record_max_size(key_len, payload_len, header_bytes, nheaders) >
		(size_t) outbox_message_max_bytes)
	{
		if (!payload_exact)
			payload_len = payload_text_size(DatumGetJsonbP(payload));
		check_record_size(payload_len, key_len, header_bytes, nheaders);
	}
	outbox = outbox_rels();

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(outbox.owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);

	id = nextval_internal(outbox.seq, false);
	if (outbox_insert_direct(id, topic, key, key_isnull, payload, headers, headers_isnull, &now))
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
		if (created_at)
			*created_at = now;
		outbox_wake_worker_at_commit();
		return id;
	}

	/* the executor's INSERT, for an outbox changed from what the scripts made */
	values[0] = Int64GetDatum(id);
	values[1] = topic;
	values[2] = key_isnull ? (Datum) 0 : key;
	nulls[2] = key_isnull ? 'n' : ' ';
	values[3] = payload;
	values[4] = headers_isnull ? (Datum) 0 : headers;
	nulls[4] = headers_isnull ? 'n' : ' ';

	SPI_connect();
	ret = SPI_execute_plan(insert_plan_for(OUTBOX_PARTITION_OF(id)), values, nulls, false, 1);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "outbox insert failed: %s", SPI_result_code_string(ret));
	if (created_at)
		*created_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	/* an error above is cleaned up by transaction abort, which restores the user */
	SetUserIdAndSecContext(save_userid, save_sec_context);

	outbox_wake_worker_at_commit();
	return id;
}

/* Validates the arguments shared by outbox_publish and publish_event. */
static void
check_publish_args(FunctionCallInfo fcinfo, bool reserved_ok)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("outbox topic must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("outbox payload must not be null"),
				 errhint("Use the JSON value 'null'::jsonb for an event without a body.")));
	outbox_check_topic(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(3))
		check_headers(PG_GETARG_JSONB_P(3), reserved_ok);
}

/* Checks the arguments (topic, payload, key, headers) and writes the event. */
static int64
publish_args(FunctionCallInfo fcinfo, bool reserved_ok, TimestampTz *created_at)
{
	check_publish_args(fcinfo, reserved_ok);
	return outbox_write_event(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1),
							  PG_GETARG_DATUM(2), PG_ARGISNULL(2),
							  PG_GETARG_DATUM(3), PG_ARGISNULL(3), created_at);
}

Datum
outbox_publish(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(publish_args(fcinfo, false, NULL));
}

/* publish_event: like outbox_publish, returning (id, created_at) for the outbox_events view. */
Datum
outbox_publish_event(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	TimestampTz created_at;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "publish_event must return a composite type");
	values[0] = Int64GetDatum(publish_args(fcinfo, false, &created_at));
	values[1] = TimestampTzGetDatum(created_at);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/*
 * republish_event: the extension's own path for publishing an event again
 * (dead-letter retry, replay), which may carry the reserved outbox-retry-of
 * and outbox-replay-of headers. Not executable by PUBLIC.
 */
Datum
outbox_republish_event(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(publish_args(fcinfo, true, NULL));
}
