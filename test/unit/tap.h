/*
 * tap.h: the few lines of TAP output the unit test programs share.
 * check() prints "ok N - ..." or "not ok N - ..."; tap_done() prints the
 * plan and returns the exit status.
 */
#ifndef EDU_OUTBOX_TAP_H
#define EDU_OUTBOX_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int	ntests = 0;
static int	nfailed = 0;

static bool
check(bool cond, const char *fmt, ...)
{
	va_list		ap;

	ntests++;
	if (!cond)
		nfailed++;
	printf("%sok %d - ", cond ? "" : "not ", ntests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

static int
tap_done(void)
{
	printf("1..%d\n", ntests);
	return nfailed == 0 ? 0 : 1;
}

#endif
