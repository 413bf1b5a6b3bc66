/*
 * util/version.c - the version of the library a program runs with (see
 * vss/version.h), which may be newer than the header it was built with.
 */
#include <vss/version.h>

const char *vss_version(void)
{
	return VSS_VERSION;
}

unsigned int vss_version_number(void)
{
	return VSS_VERSION_NUMBER;
}
