/* cli_output.h: what `husk` prints: aligned tables, JSON, ages and timestamps. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/util.h"

/* A table of strings printed kubectl-style: upper-case headers, columns left-aligned and
 * separated by three spaces, no borders, so that `awk '{print $1}'` works on it. */
typedef struct cli_table cli_table_t;

int cli_table_new(size_t n_columns, const char *const *headers, cli_table_t **ret);
void cli_table_free(cli_table_t *t);
static inline void cli_table_freep(cli_table_t **t) {
        if (*t)
                cli_table_free(*t);
        *t = NULL;
}
/* Append one row of exactly n_columns cells (copied; NULL prints as ""). */
int cli_table_add_row(cli_table_t *t, const char *const *cells);
void cli_table_write(const cli_table_t *t, FILE *f);

/* Pretty JSON (2-space indent, keys in document order) and a newline. */
void cli_json_write(FILE *f, const json_t *j);

/* A timestamp from the API: unix milliseconds (integer; values below 1e11 are taken as
 * seconds) or an RFC 3339 / "YYYY-MM-DD HH:MM:SS" (UTC) string. -EINVAL otherwise. */
int cli_time_from_json(const json_t *v, uint64_t *ret_ms);

/* How long ago, the way kubectl prints AGE: "45s", "4m12s", "37m", "5h3m", "20h", "3d4h",
 * "41d", "2y10d", "9y". A time in the future (clock skew) prints as "0s". */
char *cli_format_age(uint64_t now_ms, uint64_t then_ms, char *buf, size_t size);

/* The AGE cell for a JSON timestamp; "-" when absent or unreadable. */
char *cli_format_json_age(const json_t *v, uint64_t now_ms, char *buf, size_t size);

/* String member of an object, or fallback when absent or not a string. */
const char *cli_json_str(const json_t *obj, const char *key, const char *fallback);

/* Bytes for people: "512 B", "1.5 KiB", "23.4 GiB" (binary units, one decimal from KiB on). */
char *cli_format_bytes(uint64_t bytes, char *buf, size_t size);
