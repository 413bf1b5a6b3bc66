/*
 * service/log.h - the operator's log: one line per event that matters, to
 * standard error, each with a UTC timestamp.  Safe from any thread.
 */
#ifndef VSS_SERVICE_LOG_H
#define VSS_SERVICE_LOG_H

void vss_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
