/* base64.h: standard base64 (RFC 4648, with padding) for bytes put into text formats. */
#pragma once

#include <stddef.h>

/* data (n bytes) as a malloc'd, NUL-terminated base64 string; NULL when out of memory. */
char *base64_encode(const void *data, size_t n);
