/*
 * service/log.c - see log.h.  A line is formatted whole and written with one
 * write(2), so lines from concurrent threads never interleave.  Names and
 * paths in it come from users: control characters (newlines, carriage
 * returns, terminal escapes) are escaped (vss_proto_line), so that no name
 * can end a line or forge one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "service/log.h"

void vss_log(const char *fmt, ...)
{
	char msg[1024], line[2048];
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
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vss_proto_line(line + n, sizeof(line) - n - 1, msg);
	while (line[n])
		n++;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}
