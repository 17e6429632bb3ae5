/*
 * publisher.c: rate-limited outbox publisher for the latency and
 * sustained-load runs (C and libpq, so that the client itself costs little
 * CPU on a small machine).
 *
 * P processes, one connection each, share a fixed rate R. Each event is one
 * transaction, sent as one simple-query message (one round trip):
 *
 *   BEGIN;
 *   INSERT INTO bench_orders (customer, amount) VALUES (<c>, 10.5);
 *   SELECT outbox_publish('<topic>', '<payload>'::jsonb, 'k<c % 1000>');
 *   COMMIT;
 *
 * Right after the COMMIT's result arrives, the client's wall clock
 * (CLOCK_REALTIME) is read and logged with the event's outbox id:
 * "OUTBOX_ID COMMIT_US" per line. Sends are scheduled open-loop: event i of
 * process j is due at start + (i + j/P) * P/R; a process that falls behind
 * sends at once. Events of the first WARMUP seconds are sent but not logged.
 *
 *   publisher -d CONNINFO -t TOPIC -r RATE -s SECONDS -p PROCS -f PAYLOAD_FILE
 *             -o OUT [-w WARMUP] [-m edu|debezium]
 *
 * With -m debezium the same transaction writes Debezium's outbox instead
 * (the peer in bench/debezium.sh), and deletes the row again in the same
 * transaction, which is how that outbox is kept small (the INSERT stays in
 * the WAL the connector reads):
 *
 *   BEGIN;
 *   INSERT INTO bench_orders ...;
 *   INSERT INTO dbz_outbox (aggregatetype, aggregateid, type, payload)
 *     VALUES ('<topic>', 'k<c % 1000>', 'bench', '<payload>'::jsonb) RETURNING id;
 *   DELETE FROM dbz_outbox WHERE id = (SELECT currval('dbz_outbox_id_seq'));
 *   COMMIT;
 *
 * Prints one JSON line: events logged, achieved rate, how many were sent
 * more than 10 ms late.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static double
wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_until(double t)
{
	double		d = t - wall();

	if (d > 0)
	{
		struct timespec ts;

		ts.tv_sec = (time_t) d;
		ts.tv_nsec = (long) ((d - ts.tv_sec) * 1e9);
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
}

static char *
read_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (!f)
	{
		perror(path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	if (fread(buf, 1, n, f) != (size_t) n)
		exit(2);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return buf;
}

/* One publishing process; writes its log to OUT.<idx> and a summary line to OUT.<idx>.sum */
static int	debezium = 0;		/* -m debezium */

static int
run_worker(int idx, const char *conninfo, const char *topic, double rate, double seconds,
		   double warmup, int procs, const char *payload, const char *out, double start_at)
{
	PGconn	   *conn = PQconnectdb(conninfo);
	char	   *lit_payload,
			   *lit_topic,
			   *sql;
	size_t		sqlcap;
	double		interval = procs / rate;
	double		first = start_at + idx * interval / procs;
	double		end_at = start_at + warmup + seconds;
	double		measure_from = start_at + warmup;
	char		path[4096];
	FILE	   *f;
	long		logged = 0,
				late = 0,
				errors = 0;
	double		t_first = 0,
				t_last = 0;

	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "publisher: %s", PQerrorMessage(conn));
		return 1;
	}
	lit_payload = PQescapeLiteral(conn, payload, strlen(payload));
	lit_topic = PQescapeLiteral(conn, topic, strlen(topic));
	sqlcap = strlen(lit_payload) + strlen(lit_topic) + 512;
	sql = malloc(sqlcap);
	snprintf(path, sizeof(path), "%s.%d", out, idx);
	f = fopen(path, "w");
	if (!f)
	{
		perror(path);
		return 1;
	}

	for (long i = 0;; i++)
	{
		double		due = first + i * interval;
		double		now;
		long		cust = (i * procs + idx) % 100000;
		long long	id = -1;
		PGresult   *res;
		int			ok = 1;

		if (due >= end_at)
			break;
		now = wall();
		if (due > now)
			sleep_until(due);
		else if (now - due > 0.010 && due >= measure_from)
			late++;
		if (debezium)
			snprintf(sql, sqlcap,
					 "BEGIN; INSERT INTO bench_orders (customer, amount) VALUES (%ld, 10.5); "
					 "INSERT INTO dbz_outbox (aggregatetype, aggregateid, type, payload) "
					 "VALUES (%s, 'k%ld', 'bench', %s::jsonb) RETURNING id; "
					 "DELETE FROM dbz_outbox WHERE id = (SELECT currval('dbz_outbox_id_seq')); COMMIT",
					 cust, lit_topic, cust % 1000, lit_payload);
		else
			snprintf(sql, sqlcap,
					 "BEGIN; INSERT INTO bench_orders (customer, amount) VALUES (%ld, 10.5); "
					 "SELECT outbox_publish(%s, %s::jsonb, 'k%ld'); COMMIT",
					 cust, lit_topic, lit_payload, cust % 1000);
		if (!PQsendQuery(conn, sql))
		{
			fprintf(stderr, "publisher: %s", PQerrorMessage(conn));
			return 1;
		}
		while ((res = PQgetResult(conn)) != NULL)
		{
			ExecStatusType st = PQresultStatus(res);

			if (st == PGRES_TUPLES_OK && PQntuples(res) == 1)
				id = atoll(PQgetvalue(res, 0, 0));
			else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
			{
				if (errors == 0)
					fprintf(stderr, "publisher: %s", PQresultErrorMessage(res));
				ok = 0;
			}
			PQclear(res);
		}
		now = wall();
		if (!ok || id < 0)
		{
			errors++;
			continue;
		}
		if (due >= measure_from)
		{
			fprintf(f, "%lld %lld\n", id, (long long) (now * 1e6));
			if (logged++ == 0)
				t_first = now;
			t_last = now;
		}
	}
	fclose(f);
	PQfinish(conn);
	snprintf(path, sizeof(path), "%s.%d.sum", out, idx);
	f = fopen(path, "w");
	fprintf(f, "%ld %ld %ld %.6f %.6f\n", logged, late, errors, t_first, t_last);
	fclose(f);
	return errors ? 1 : 0;
}

int
main(int argc, char **argv)
{
	const char *conninfo = "",
			   *topic = NULL,
			   *payload_file = NULL,
			   *out = NULL;
	double		rate = 1000,
				seconds = 10,
				warmup = 0;
	int			procs = 4,
				opt,
				failed = 0;
	char	   *payload;
	double		start_at;
	long		logged = 0,
				late = 0,
				errors = 0;
	double		t_first = 0,
				t_last = 0;
	FILE	   *all;

	while ((opt = getopt(argc, argv, "d:t:r:s:p:f:o:w:m:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 't': topic = optarg; break;
			case 'r': rate = atof(optarg); break;
			case 's': seconds = atof(optarg); break;
			case 'p': procs = atoi(optarg); break;
			case 'f': payload_file = optarg; break;
			case 'o': out = optarg; break;
			case 'w': warmup = atof(optarg); break;
			case 'm': debezium = strcmp(optarg, "debezium") == 0; break;
			default:
				fprintf(stderr, "usage: %s -d CONNINFO -t TOPIC -r RATE -s SECONDS -p PROCS -f PAYLOAD_FILE -o OUT [-w WARMUP] [-m edu|debezium]\n", argv[0]);
				return 2;
		}
	}
	if (!topic || !payload_file || !out || rate <= 0 || procs <= 0)
	{
		fprintf(stderr, "publisher: -t, -f, -o and positive -r, -p are required\n");
		return 2;
	}
	payload = read_file(payload_file);
	start_at = wall() + 1.0;	/* time for every process to connect */
	for (int i = 0; i < procs; i++)
	{
		pid_t		pid = fork();

		if (pid == 0)
			_exit(run_worker(i, conninfo, topic, rate, seconds, warmup, procs, payload, out, start_at));
		if (pid < 0)
		{
			perror("fork");
			return 1;
		}
	}
	for (int i = 0; i < procs; i++)
	{
		int			status;

		wait(&status);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	}

	all = fopen(out, "w");
	for (int i = 0; i < procs; i++)
	{
		char		path[4096];
		char		buf[65536];
		size_t		n;
		FILE	   *f;
		long		l, la, e;
		double		tf, tl;

		snprintf(path, sizeof(path), "%s.%d", out, i);
		if ((f = fopen(path, "r")) != NULL)
		{
			while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
				fwrite(buf, 1, n, all);
			fclose(f);
			unlink(path);
		}
		snprintf(path, sizeof(path), "%s.%d.sum", out, i);
		if ((f = fopen(path, "r")) != NULL)
		{
			if (fscanf(f, "%ld %ld %ld %lf %lf", &l, &la, &e, &tf, &tl) == 5)
			{
				logged += l;
				late += la;
				errors += e;
				if (l > 0 && (t_first == 0 || tf < t_first))
					t_first = tf;
				if (tl > t_last)
					t_last = tl;
			}
			fclose(f);
			unlink(path);
		}
	}
	fclose(all);
	printf("{\"target_rate\": %.1f, \"seconds\": %.1f, \"warmup\": %.1f, \"procs\": %d, \"sent\": %ld, "
		   "\"achieved_rate\": %.1f, \"late_over_10ms\": %ld, \"errors\": %ld}\n",
		   rate, seconds, warmup, procs, logged,
		   t_last > t_first ? logged / (t_last - t_first) : 0.0, late, errors);
	return failed;
}
