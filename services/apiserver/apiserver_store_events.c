/* apiserver_store_events.c: the events table: append (bounded per deployment) and list. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_store_private.h"

int store_event_record(apiserver_store_t *s, event_t *e) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *ins = NULL, *trim = NULL;
        int r, rc;

        if (!e->timestamp)
                e->timestamp = now_realtime_ms();
        r = store_deployment_known(s, e->deployment_id);
        if (r < 0)
                return r;

        r = store_prepare(s,
                          "INSERT INTO events (deployment_id, timestamp, level, component, reason, message) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          &ins);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins, 1, e->deployment_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, (sqlite3_int64)e->timestamp);
        sqlite3_bind_text(ins, 3, e->level, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, e->component, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, e->reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, e->message ?: "", -1, SQLITE_STATIC);
        rc = sqlite3_step(ins);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        e->id = (uint64_t)sqlite3_last_insert_rowid(s->db);

        /* A crash-looping deployment records events forever: keep only the newest. */
        r = store_prepare(s,
                          "DELETE FROM events WHERE deployment_id = ?1 AND id <= "
                          "(SELECT id FROM events WHERE deployment_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                          &trim);
        if (r < 0)
                return r;
        sqlite3_bind_text(trim, 1, e->deployment_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(trim, 2, STORE_EVENTS_PER_DEPLOYMENT);
        rc = sqlite3_step(trim);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

void store_event_array_free(event_t *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                event_clear(&a[i]);
        free(a);
}

static int row_read(sqlite3_stmt *st, event_t *e) {
        int r = 0;

        e->id = (uint64_t)sqlite3_column_int64(st, 0);
        r = r ?: store_column_dup(st, 1, &e->deployment_id);
        e->timestamp = (uint64_t)sqlite3_column_int64(st, 2);
        r = r ?: store_column_dup(st, 3, &e->level);
        r = r ?: store_column_dup(st, 4, &e->component);
        r = r ?: store_column_dup(st, 5, &e->reason);
        r = r ?: store_column_dup(st, 6, &e->message);
        return r;
}

int store_event_list(apiserver_store_t *s, const char *deployment_id, const store_event_filter_t *f, event_t **ret,
                     size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        size_t limit = f->limit && f->limit < STORE_EVENTS_LIST_MAX ? f->limit : STORE_EVENTS_LIST_MAX;
        int min_rank = f->min_level ? event_level_rank(f->min_level) : 0;
        event_t *a = NULL;
        size_t n = 0;
        int r, rc;

        if (min_rank < 0)
                return -EINVAL;
        /* The newest page when not following, then reversed; the oldest after a cursor when
         * following, so that a follower never skips any. */
        r = store_prepare(
                s,
                f->after_id ? "SELECT id, deployment_id, timestamp, level, component, reason, message FROM events "
                              "WHERE deployment_id = ? AND id > ? AND (CASE level WHEN 'error' THEN 2 "
                              "WHEN 'warning' THEN 1 ELSE 0 END) >= ? AND timestamp >= ? ORDER BY id ASC LIMIT ?"
                            : "SELECT id, deployment_id, timestamp, level, component, reason, message FROM events "
                              "WHERE deployment_id = ? AND id > ? AND (CASE level WHEN 'error' THEN 2 "
                              "WHEN 'warning' THEN 1 ELSE 0 END) >= ? AND timestamp >= ? ORDER BY id DESC LIMIT ?",
                &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, deployment_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)f->after_id);
        sqlite3_bind_int(st, 3, min_rank);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)f->since_ms);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)limit);
        a = calloc(limit + 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                r = row_read(st, &a[n]);
                n++;
                if (r < 0) {
                        store_event_array_free(a, n);
                        return r;
                }
        }
        if (rc != SQLITE_DONE) {
                store_event_array_free(a, n);
                return store_errno(rc);
        }
        if (!f->after_id)
                for (size_t i = 0; i < n / 2; i++) {
                        event_t t = a[i];
                        a[i] = a[n - 1 - i];
                        a[n - 1 - i] = t;
                }
        *ret = a;
        *ret_n = n;
        return 0;
}
