/*
 * util/struct_in.c - reading a struct the caller sized (see struct_in.h).
 */
#include <errno.h>
#include <string.h>

#include <vss/version.h>

#include "util/struct_in.h"

int vss_struct_in(void *dst, size_t dst_size, const void *src, size_t src_size,
		  size_t min_size, const char *what, struct vss_error *err)
{
	const unsigned char *extra = (const unsigned char *)src + dst_size;

	if (src_size < min_size)
		return vss_error_set(err, -EINVAL, "%s: size is %zu, at least %zu expected "
				     "(set it to sizeof(%s))", what, src_size, min_size, what);
	for (size_t i = 0; src_size > dst_size && i < src_size - dst_size; i++)
		if (extra[i])
			return vss_error_set(err, -E2BIG, "%s: a member past byte %zu is set, "
					     "which libvss %s does not know", what, dst_size,
					     vss_version());
	memcpy(dst, src, src_size < dst_size ? src_size : dst_size);
	if (src_size < dst_size)
		memset((unsigned char *)dst + src_size, 0, dst_size - src_size);
	return 0;
}
