/*
 * txn_intruder.c: a second transactional producer for the fault suite's
 * fencing_eos scenario. It takes over a transactional.id (usually the running
 * relay's), which fences whoever held it, and then commits one transaction
 * per line read on stdin, so the scenario decides when it writes.
 *
 *   txn_intruder BROKERS TRANSACTIONAL_ID TOPIC
 *
 * Prints one line per step: "ready" after init_transactions, then for each
 * input line "committed", "fenced: <reason>" or "failed: <reason>". Exits 0
 * at end of input, 2 if it could not start.
 *
 * Only librdkafka, none of relay/: this is another program that happens to
 * use the same id, as a misconfigured second relay would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#define TIMEOUT_MS 30000

static int
fenced(rd_kafka_t *rk, rd_kafka_error_t *error)
{
	char		reason[256];
	rd_kafka_resp_err_t code = rd_kafka_error_code(error);
	rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(rk, reason, sizeof(reason));

	return code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
		code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH ||
		fatal == RD_KAFKA_RESP_ERR__FENCED || fatal == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
		fatal == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

/* One transaction holding one record; prints its outcome. */
static void
write_one(rd_kafka_t *rk, const char *topic, const char *value)
{
	rd_kafka_error_t *error;
	rd_kafka_resp_err_t err;

	if ((error = rd_kafka_begin_transaction(rk)) != NULL)
		goto failed;
	err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
							RD_KAFKA_V_VALUE((void *) value, strlen(value)),
							RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		printf("failed: produce: %s\n", rd_kafka_err2str(err));
		return;
	}
	if ((error = rd_kafka_commit_transaction(rk, TIMEOUT_MS)) != NULL)
		goto failed;
	printf("committed\n");
	return;

failed:
	printf("%s: %s\n", fenced(rk, error) ? "fenced" : "failed", rd_kafka_error_string(error));
	if (rd_kafka_error_txn_requires_abort(error))
		rd_kafka_error_destroy(rd_kafka_abort_transaction(rk, TIMEOUT_MS));
	rd_kafka_error_destroy(error);
}

int
main(int argc, char **argv)
{
	char		errstr[512];
	char		line[256];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_error_t *error;

	if (argc != 4)
	{
		fprintf(stderr, "usage: %s BROKERS TRANSACTIONAL_ID TOPIC\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof(errstr)) ||
		rd_kafka_conf_set(conf, "transactional.id", argv[2], errstr, sizeof(errstr)))
	{
		fprintf(stderr, "%s\n", errstr);
		return 2;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		fprintf(stderr, "%s\n", errstr);
		return 2;
	}
	if ((error = rd_kafka_init_transactions(rk, TIMEOUT_MS)) != NULL)
	{
		printf("failed: init_transactions: %s\n", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		rd_kafka_destroy(rk);
		return 2;
	}
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin) != NULL)
	{
		line[strcspn(line, "\n")] = '\0';
		write_one(rk, argv[3], line);
	}
	rd_kafka_destroy(rk);
	return 0;
}
