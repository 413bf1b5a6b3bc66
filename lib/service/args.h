/*
 * service/args.h - reading a request's arguments (args.c), with a readable
 * error for each way they can be wrong: the client may be anything.
 */
#ifndef VSS_SERVICE_ARGS_H
#define VSS_SERVICE_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/error.h>

int svc_arg_str(json_t *args, const char *key, bool required, const char **out,
		struct vss_error *err);
int svc_arg_bool(json_t *args, const char *key, bool *out, struct vss_error *err);
int svc_arg_u64(json_t *args, const char *key, bool required, uint64_t *out,
		struct vss_error *err);

#endif
