/* apiserver_store_exits.c: the exited_instances table: how removed instances ended, the newest few per deployment. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_store_private.h"

void store_exit_clear(store_exit_t *e) {
        free(e->instance_id);
        free(e->address);
        free(e->exit_reason);
        *e = (store_exit_t){};
}

void store_exit_array_free(store_exit_t *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                store_exit_clear(&a[i]);
        free(a);
}

int store_exit_record(apiserver_store_t *s, const char *deployment_id, const store_exit_t *e) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *ins = NULL, *trim = NULL;
        int r, rc;

        if (!e->instance_id || !e->exit_reason)
                return -EINVAL;
        r = store_deployment_known(s, deployment_id);
        if (r < 0)
                return r;

        /* A resend (the scheduler retries until vmm-driver removed the instance) changes nothing. */
        r = store_prepare(s,
                          "INSERT INTO exited_instances (deployment_id, instance_id, generation, address, started_at, "
                          "exited_at, exit_reason, exit_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                          "ON CONFLICT (deployment_id, instance_id) DO NOTHING",
                          &ins);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins, 1, deployment_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, e->instance_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)e->generation);
        if (e->address)
                sqlite3_bind_text(ins, 4, e->address, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, (sqlite3_int64)e->started_at);
        sqlite3_bind_int64(ins, 6, (sqlite3_int64)e->exited_at);
        sqlite3_bind_text(ins, 7, e->exit_reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 8, e->exit_status);
        rc = sqlite3_step(ins);
        if (rc != SQLITE_DONE)
                return store_errno(rc);

        /* A crash-looping worker exits forever: keep only the newest. */
        r = store_prepare(s,
                          "DELETE FROM exited_instances WHERE deployment_id = ?1 AND rowid NOT IN "
                          "(SELECT rowid FROM exited_instances WHERE deployment_id = ?1 "
                          "ORDER BY exited_at DESC, rowid DESC LIMIT ?2)",
                          &trim);
        if (r < 0)
                return r;
        sqlite3_bind_text(trim, 1, deployment_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(trim, 2, STORE_EXITS_PER_DEPLOYMENT);
        rc = sqlite3_step(trim);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

int store_exit_list(apiserver_store_t *s, const char *deployment_id, store_exit_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        store_exit_t *a = NULL;
        size_t n = 0;
        int r, rc;

        r = store_prepare(s,
                          "SELECT instance_id, generation, address, started_at, exited_at, exit_reason, exit_status "
                          "FROM exited_instances WHERE deployment_id = ? ORDER BY exited_at DESC, rowid DESC LIMIT ?",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, deployment_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, STORE_EXITS_PER_DEPLOYMENT);
        a = calloc(STORE_EXITS_PER_DEPLOYMENT + 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                store_exit_t *e = &a[n++];

                e->generation = (uint64_t)sqlite3_column_int64(st, 1);
                e->started_at = (uint64_t)sqlite3_column_int64(st, 3);
                e->exited_at = (uint64_t)sqlite3_column_int64(st, 4);
                e->exit_status = sqlite3_column_int64(st, 6);
                r = store_column_dup(st, 0, &e->instance_id);
                r = r ?: store_column_dup(st, 2, &e->address);
                r = r ?: store_column_dup(st, 5, &e->exit_reason);
                if (r < 0) {
                        store_exit_array_free(a, n);
                        return r;
                }
        }
        if (rc != SQLITE_DONE) {
                store_exit_array_free(a, n);
                return store_errno(rc);
        }
        *ret = a;
        *ret_n = n;
        return 0;
}
