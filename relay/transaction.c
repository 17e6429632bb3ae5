/*
 * transaction.c: exactly-once delivery, one Kafka transaction per chunk.
 *
 * A chunk's records and the relay's position record are produced inside one
 * transaction and committed together, so a read_committed consumer sees
 * either both or neither. librdkafka's rd_kafka_error_t tells how a failed
 * call may go on; this file turns that into the few cases the worker acts
 * on (RelayTxnResult).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "producer_internal.h"

/* Errors by which a newer producer with our transactional.id shows itself. */
static bool
is_fencing(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR__FENCED ||
		err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
		err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

/*
 * The producer is unusable: record why in its health (as error_cb does for
 * the __FATAL event, which may come later or not be polled at all) and say
 * whether it was fenced.
 */
static RelayTxnResult
fatal_result(RelayProducer *p, rd_kafka_error_t *error, const char *what,
			 char *errbuf, size_t errlen)
{
	char		reason[RELAY_ERRLEN - 64];
	rd_kafka_resp_err_t code = rd_kafka_error_code(error);
	rd_kafka_resp_err_t orig = rd_kafka_fatal_error(p->rk, reason, sizeof(reason));
	bool		fenced = is_fencing(code) || is_fencing(orig);

	if (orig == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		orig = code;
		snprintf(reason, sizeof(reason), "%s", rd_kafka_error_string(error));
	}
	p->health.fatal = true;
	p->health.last_error = orig;
	snprintf(p->health.last_error_text, RELAY_ERRLEN, "fatal: %s", reason);
	snprintf(errbuf, errlen, "%s: %s%s", what,
			 fenced ? "fenced by a newer producer with the same transactional.id: " : "",
			 reason);
	return fenced ? RELAY_TXN_FENCED : RELAY_TXN_FATAL;
}

/*
 * Classifies a failed transactional call. Abortable errors are left to the
 * caller; anything neither retriable nor abortable (a call in the wrong
 * state, say) leaves the producer in a state the relay cannot reason about,
 * so it is rebuilt.
 */
static RelayTxnResult
classify(RelayProducer *p, rd_kafka_error_t *error, const char *what,
		 char *errbuf, size_t errlen)
{
	if (rd_kafka_error_is_fatal(error) || is_fencing(rd_kafka_error_code(error)))
		return fatal_result(p, error, what, errbuf, errlen);
	snprintf(errbuf, errlen, "%s: %s", what, rd_kafka_error_string(error));
	if (rd_kafka_error_is_retriable(error))
		return RELAY_TXN_RETRY;
	if (rd_kafka_error_txn_requires_abort(error))
		return RELAY_TXN_ABORTED;
	p->health.fatal = true;
	p->health.last_error = rd_kafka_error_code(error);
	snprintf(p->health.last_error_text, RELAY_ERRLEN, "fatal: %s", errbuf);
	return RELAY_TXN_FATAL;
}

RelayTxnResult
relay_txn_init(RelayProducer *p, int timeout_ms, char *errbuf, size_t errlen)
{
	rd_kafka_error_t *error = rd_kafka_init_transactions(p->rk, timeout_ms);
	RelayTxnResult result;

	if (error == NULL)
		return RELAY_TXN_OK;
	result = classify(p, error, "could not initialize Kafka transactions", errbuf, errlen);
	rd_kafka_error_destroy(error);
	/* nothing to abort before the first transaction: rebuild */
	return result == RELAY_TXN_ABORTED ? RELAY_TXN_FATAL : result;
}

RelayTxnResult
relay_txn_begin(RelayProducer *p, char *errbuf, size_t errlen)
{
	rd_kafka_error_t *error = rd_kafka_begin_transaction(p->rk);
	RelayTxnResult result;

	if (error == NULL)
		return RELAY_TXN_OK;
	result = classify(p, error, "could not begin a Kafka transaction", errbuf, errlen);
	rd_kafka_error_destroy(error);
	/* begin neither blocks nor has anything to abort: only fatal is left */
	return result == RELAY_TXN_FENCED ? result : RELAY_TXN_FATAL;
}

bool
relay_txn_add_record(RelayProducer *p, const char *topic, const char *key,
					 const char *value, size_t value_len, char *errbuf, size_t errlen)
{
	rd_kafka_resp_err_t err;

	/* a full local queue drains as the chunk's records are sent; give up after 5 s */
	for (int tries = 0;; tries++)
	{
		/*
		 * Copied: the caller's buffer may go before the record is sent.
		 * Partition 0, where relay_position_read looks, whatever the number
		 * of partitions of a topic the relay did not create itself.
		 */
		err = rd_kafka_producev(p->rk,
								RD_KAFKA_V_TOPIC(topic),
								RD_KAFKA_V_PARTITION(0),
								RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
								RD_KAFKA_V_VALUE((void *) value, value_len),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_OPAQUE(RELAY_OPAQUE_NO_CHUNK),
								RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries == 50)
			break;
		rd_kafka_poll(p->rk, 100);
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(errbuf, errlen, "could not produce the position record to topic \"%s\": %s",
				 topic, rd_kafka_err2str(err));
		return false;
	}
	return true;
}

/*
 * Aborts after an abortable error at commit. Called again (by the next
 * commit) if the abort timed out: a commit in that state would only be
 * refused as out of place.
 */
static RelayTxnResult
abort_for_commit(RelayProducer *p, int timeout_ms, const char *why, char *errbuf, size_t errlen)
{
	RelayTxnResult result = relay_txn_abort(p, timeout_ms, errbuf, errlen);

	if (result == RELAY_TXN_OK)
	{
		snprintf(errbuf, errlen, "%s; the transaction was aborted", why);
		return RELAY_TXN_ABORTED;
	}
	return result;
}

RelayTxnResult
relay_txn_commit(RelayProducer *p, int timeout_ms, char *errbuf, size_t errlen)
{
	int64_t		deadline = relay_now_ms() + timeout_ms;
	rd_kafka_error_t *error;
	RelayTxnResult result;
	char		why[RELAY_ERRLEN];
	int64_t		left;

	if (p->abort_pending)
		return abort_for_commit(p, timeout_ms, "an earlier commit failed", errbuf, errlen);
	error = rd_kafka_commit_transaction(p->rk, timeout_ms);
	if (error == NULL)
		return RELAY_TXN_OK;
	result = classify(p, error, "could not commit the Kafka transaction", why, sizeof(why));
	rd_kafka_error_destroy(error);
	snprintf(errbuf, errlen, "%s", why);
	if (result != RELAY_TXN_ABORTED)
		return result;

	/*
	 * Abortable (a record failed, say): abort here, in what is left of the
	 * time, so the caller only has to resend.
	 */
	left = deadline - relay_now_ms();
	return abort_for_commit(p, left > 0 ? (int) left : 0, why, errbuf, errlen);
}

RelayTxnResult
relay_txn_abort(RelayProducer *p, int timeout_ms, char *errbuf, size_t errlen)
{
	rd_kafka_error_t *error = rd_kafka_abort_transaction(p->rk, timeout_ms);
	RelayTxnResult result;

	if (error == NULL)
	{
		p->abort_pending = false;
		return RELAY_TXN_OK;
	}
	result = classify(p, error, "could not abort the Kafka transaction", errbuf, errlen);
	rd_kafka_error_destroy(error);
	if (result == RELAY_TXN_ABORTED)
		return RELAY_TXN_FATAL;
	/* the abort goes on in the background; only the same call may resume it */
	p->abort_pending = result == RELAY_TXN_RETRY;
	return result;
}

/*
 * Repeats a resumable call while its answer is RETRY. librdkafka goes on
 * with a timed-out commit or abort in the background and accepts no other
 * transactional call until the same call is made again and finishes; the
 * relay used to treat such an abort as failed and drop the producer.
 */
static RelayTxnResult
settle(RelayTxnResult (*call) (RelayProducer *, int, char *, size_t),
	   RelayProducer *p, int call_timeout_ms, RelayTxnWait wait, void *arg,
	   char *errbuf, size_t errlen)
{
	RelayTxnResult result;

	while ((result = call(p, call_timeout_ms, errbuf, errlen)) == RELAY_TXN_RETRY)
		if (!wait(arg))
			break;
	return result;
}

RelayTxnResult
relay_txn_commit_settled(RelayProducer *p, int call_timeout_ms, RelayTxnWait wait, void *arg,
						 char *errbuf, size_t errlen)
{
	return settle(relay_txn_commit, p, call_timeout_ms, wait, arg, errbuf, errlen);
}

RelayTxnResult
relay_txn_abort_settled(RelayProducer *p, int call_timeout_ms, RelayTxnWait wait, void *arg,
						char *errbuf, size_t errlen)
{
	return settle(relay_txn_abort, p, call_timeout_ms, wait, arg, errbuf, errlen);
}

bool
relay_txn_abort_pending(const RelayProducer *p)
{
	return p->abort_pending;
}
