/*
 * util/struct_in.h - reading a struct the caller sized: the option structs
 * of the public API (vss_cow_config, vss_writer_options, vss_writer_handlers)
 * begin with a size_t size that the caller sets to sizeof the struct it was
 * compiled with, so that members can be added at the end without breaking
 * programs built against an older or a newer header (as Linux reads
 * clone_args and open_how).
 */
#ifndef VSS_UTIL_STRUCT_IN_H
#define VSS_UTIL_STRUCT_IN_H

#include <stddef.h>

#include <vss/error.h>

/* The size of a struct up to and including @member: the smallest @size a
 * caller may pass when @member was the last one of the first version. */
#define VSS_SIZE_TO(type, member) \
	(offsetof(type, member) + sizeof(((type *)0)->member))

/*
 * Copies the caller's struct @src of @src_size bytes into @dst, which is
 * this library's struct of @dst_size bytes: members the caller's struct is
 * too old to have become zero (every member added later has 0 as its
 * default); members a newer caller has and this library does not know must
 * be zero.  Returns 0, or -EINVAL if @src_size is below @min_size (the size
 * was not set) or -E2BIG if an unknown member is set, with @what (the
 * struct's name) in @err's message.
 */
int vss_struct_in(void *dst, size_t dst_size, const void *src, size_t src_size,
		  size_t min_size, const char *what, struct vss_error *err);

#endif
