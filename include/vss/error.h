/*
 * vss/error.h - how libvss reports failure.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure.  Functions that can fail for reasons worth explaining also take an
 * optional struct vss_error, which receives one readable line for the caller
 * to show.  The library never prints and never exits.
 */
#ifndef VSS_ERROR_H
#define VSS_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define VSS_ERROR_MSG_MAX 512

struct vss_error {
	int code;                      /* the negative errno also returned */
	char msg[VSS_ERROR_MSG_MAX];   /* one line, no trailing newline */
};

/* Fills @err (if not NULL) with @code and a printf-style message; returns @code. */
int vss_error_set(struct vss_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Clears @err (if not NULL). */
void vss_error_clear(struct vss_error *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
