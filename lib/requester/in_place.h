/*
 * requester/in_place.h - the plan behind vss_requester_run_in_place()
 * (include/vss/requester.h): which shadow path is shown at which live path,
 * in which order.  Internal; tests/unit/test_in_place.c tests it.
 */
#ifndef VSS_REQUESTER_IN_PLACE_H
#define VSS_REQUESTER_IN_PLACE_H

#include <stddef.h>

#include <vss/error.h>

struct vss_in_place_bind {
	char *path;      /* the live path (absolute, no trailing slash) */
	char *source;    /* the same file or directory inside an exposed shadow */
};

/*
 * Checks a plan and puts it in mount order: a path before every path inside
 * it (so a volume mounted inside another shows its own shadow, not the
 * outer shadow's empty mount point).  The same path twice keeps the first.
 * Refuses a relative path, and "/" (a process cannot have its root mounted
 * over in place: read VSS_SHADOW_TARGET_n instead).  @n is updated.
 */
int vss_in_place_order(struct vss_in_place_bind *b, size_t *n, struct vss_error *err);

#endif
