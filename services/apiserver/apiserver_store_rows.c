/* apiserver_store_rows.c: reading columns and rows the same way in every table of the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_store_private.h"

const char *store_column_text(sqlite3_stmt *st, int col) {
        const unsigned char *t = sqlite3_column_text(st, col);

        return t ? (const char *)t : "";
}

void store_column_copy(sqlite3_stmt *st, int col, char *buf, size_t size) {
        snprintf(buf, size, "%s", store_column_text(st, col));
}

int store_column_dup(sqlite3_stmt *st, int col, char **ret) {
        const unsigned char *t = sqlite3_column_text(st, col);

        *ret = NULL;
        /* sqlite3_column_text() answers NULL for NULL, and also when it could not convert. */
        if (!t)
                return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : -ENOMEM;
        *ret = strdup((const char *)t);
        return *ret ? 0 : -ENOMEM;
}

static void elements_free(uint8_t *a, size_t n, size_t elem_size, store_elem_clear_fn clear) {
        for (size_t i = 0; clear && i < n; i++)
                clear(a + i * elem_size);
        free(a);
}

int store_rows_collect(sqlite3_stmt *st, size_t elem_size, store_row_read_fn read, store_elem_clear_fn clear,
                       void **ret, size_t *ret_n) {
        uint8_t *a = NULL;
        size_t n = 0, cap = 0;
        int r, rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        size_t want = cap ? cap * 2 : 8;
                        uint8_t *grown = reallocarray(a, want, elem_size);

                        if (!grown) {
                                elements_free(a, n, elem_size, clear);
                                return -ENOMEM;
                        }
                        a = grown;
                        cap = want;
                }
                memset(a + n * elem_size, 0, elem_size);
                r = read(st, a + n * elem_size);
                n++;
                if (r < 0) {
                        elements_free(a, n, elem_size, clear);
                        return r;
                }
        }
        if (rc != SQLITE_DONE) {
                elements_free(a, n, elem_size, clear);
                return store_errno(rc);
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

int store_step_row(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW)
                return 1;
        return rc == SQLITE_DONE ? -ENOENT : store_errno(rc);
}

int store_change_one(apiserver_store_t *s, const char *sql, const char *arg) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s, sql, &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}
