/*
 * errors.c: which Kafka errors make a record poison.
 *
 * Everything else (timeouts, lost connections, leader changes, fatal
 * idempotence errors) is transient: the relay sends the record again.
 */
#include <librdkafka/rdkafka.h>

#include "relay.h"

bool
relay_error_is_permanent(int err)
{
	switch ((rd_kafka_resp_err_t) err)
	{
		case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
		case RD_KAFKA_RESP_ERR_INVALID_RECORD:
		case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
		case RD_KAFKA_RESP_ERR__BAD_MSG:
		case RD_KAFKA_RESP_ERR__INVALID_ARG:
			return true;
		default:
			return err == RELAY_ERR_TOPIC_REFUSED;
	}
}

bool
relay_error_is_unknown_topic(int err)
{
	return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
		err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
}

const char *
relay_error_text(int err)
{
	if (err == RELAY_ERR_TOPIC_REFUSED)
		return "Unknown topic: it stayed unknown to the brokers, which do not create it";
	return rd_kafka_err2str((rd_kafka_resp_err_t) err);
}

bool
relay_error_is_authentication(int err)
{
	switch ((rd_kafka_resp_err_t) err)
	{
		case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		case RD_KAFKA_RESP_ERR__SSL:
		case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
		case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
		case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
			return true;
		default:
			return false;
	}
}
