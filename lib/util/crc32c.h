/*
 * util/crc32c.h - CRC-32C (Castagnoli), the checksum of every on-disk
 * metadata record.  Uses the SSE4.2 instruction when the CPU has it.
 */
#ifndef VSS_UTIL_CRC32C_H
#define VSS_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc = 0; the result is the finished CRC-32C. */
uint32_t vss_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
