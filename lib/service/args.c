/*
 * service/args.c - reading a request's arguments, with a readable error for
 * each way they can be wrong (the client may be anything).
 */
#include <errno.h>

#include "service/args.h"

int svc_arg_str(json_t *args, const char *key, bool required, const char **out,
		struct vss_error *err)
{
	json_t *v = json_object_get(args, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return vss_error_set(err, -EINVAL, "missing argument \"%s\"", key);
		return 0;
	}
	if (!json_is_string(v))
		return vss_error_set(err, -EINVAL, "argument \"%s\" must be a string", key);
	*out = json_string_value(v);
	if (required && !**out)
		return vss_error_set(err, -EINVAL, "argument \"%s\" must not be empty", key);
	return 0;
}

int svc_arg_bool(json_t *args, const char *key, bool *out, struct vss_error *err)
{
	json_t *v = json_object_get(args, key);

	*out = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return vss_error_set(err, -EINVAL, "argument \"%s\" must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

int svc_arg_u64(json_t *args, const char *key, bool required, uint64_t *out,
		struct vss_error *err)
{
	json_t *v = json_object_get(args, key);

	if (!v || json_is_null(v)) {
		if (required)
			return vss_error_set(err, -EINVAL, "missing argument \"%s\"", key);
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return vss_error_set(err, -EINVAL,
				     "argument \"%s\" must be a non-negative integer", key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}
