/* base64.c: standard base64 encoding (see base64.h). */
#include "lib/base64.h"

#include <stdint.h>
#include <stdlib.h>

char *base64_encode(const void *data, size_t n) {
        static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *u = data;
        char *out, *o;

        if (n > (SIZE_MAX - 1) / 4 * 3 - 2)
                return NULL;
        out = malloc(4 * ((n + 2) / 3) + 1);
        if (!out)
                return NULL;
        o = out;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v =
                        (uint32_t)u[i] << 16 | (i + 1 < n ? (uint32_t)u[i + 1] << 8 : 0) | (i + 2 < n ? u[i + 2] : 0);

                *o++ = tbl[v >> 18 & 63];
                *o++ = tbl[v >> 12 & 63];
                *o++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
                *o++ = i + 2 < n ? tbl[v & 63] : '=';
        }
        *o = '\0';
        return out;
}
