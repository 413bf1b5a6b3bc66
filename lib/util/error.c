/*
 * util/error.c - filling struct vss_error (see include/vss/error.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <vss/error.h>

int vss_error_set(struct vss_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void vss_error_clear(struct vss_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}
