/*
 * service/log.c - see log.h.  A line is formatted whole and written with one
 * write(2), so lines from concurrent threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "service/log.h"

void vss_log(const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ vssd: ",
			      ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	for (n = 0; line[n]; n++)
		if (line[n] == '\n')
			line[n] = ' ';
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}
