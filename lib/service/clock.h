/*
 * service/clock.h - milliseconds on CLOCK_MONOTONIC, for deadlines and
 * durations in vssd (never wall time: a clock step changes nothing).
 */
#ifndef VSS_SERVICE_CLOCK_H
#define VSS_SERVICE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t svc_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
