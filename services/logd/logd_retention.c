/* logd_retention.c: what logs stay: the newest few finished instances per deployment, nothing once it is purged. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/logd/logd.h"

void logd_instance_drop(logd_instance_t *i) {
        logd_t *d = i->logd;
        _cleanup_free_ char *store = NULL, *spool = NULL, *parent = NULL;
        int r;

        if (i->store_open) {
                store = strdup(i->store.dir);
                parent = i->deployment_id ? strdup(i->deployment_id) : NULL;
        }
        spool = logd_instance_spool_path(i);
        zhashx_delete(d->instances, i->id);
        logd_instance_free(i);
        if (spool)
                (void)unlink(spool);
        if (store) {
                r = rm_rf(store);
                if (r < 0)
                        log_warning_errno(r, "Failed to remove %s, ignoring: %m", store);
        }
        if (parent) {
                _cleanup_free_ char *ddir = NULL;

                /* The deployment's directory goes with its last instance. */
                if (asprintf(&ddir, "%s/deployments/%s", d->dir, parent) >= 0)
                        (void)rmdir(ddir);
        }
        d->state_dirty = true;
}

static int by_finished_desc(const void *a, const void *b) {
        const logd_instance_t *x = *(logd_instance_t *const *)a, *y = *(logd_instance_t *const *)b;

        if (x->finished_at != y->finished_at)
                return x->finished_at < y->finished_at ? 1 : -1;
        return strcmp(y->id, x->id);
}

void logd_retain(logd_t *d, const char *deployment_id) {
        uint32_t keep = logd_config(d)->logd.retained_instances;
        _cleanup_free_ logd_instance_t **finished = NULL;
        size_t n = 0;

        finished = calloc(zhashx_size(d->instances) + 1, sizeof(*finished));
        if (!finished)
                return;
        for (logd_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances))
                if (i->finished_at && i->deployment_id && streq(i->deployment_id, deployment_id))
                        finished[n++] = i;
        if (n <= keep)
                return;
        qsort(finished, n, sizeof(*finished), by_finished_desc);
        for (size_t k = keep; k < n; k++) {
                log_info("Instance %s of deployment %s: dropping its logs (%u newer finished instances kept)",
                         finished[k]->id, deployment_id, keep);
                logd_instance_drop(finished[k]);
        }
}

void logd_retain_all(logd_t *d) {
        size_t n = 0, cap = zhashx_size(d->instances) + 1;
        char **deps = calloc(cap, sizeof(char *));

        if (!deps)
                return;
        /* Copies: retention frees instances, and their strings with them. */
        for (logd_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances)) {
                bool seen = false;

                if (!i->deployment_id)
                        continue;
                for (size_t k = 0; k < n && !seen; k++)
                        seen = streq(deps[k], i->deployment_id);
                if (!seen && (deps[n] = strdup(i->deployment_id)))
                        n++;
        }
        for (size_t k = 0; k < n; k++) {
                logd_retain(d, deps[k]);
                free(deps[k]);
        }
        free(deps);
}

void logd_purge(logd_t *d, const char *deployment_id) {
        _cleanup_free_ logd_instance_t **mine = NULL;
        _cleanup_free_ char *ddir = NULL;
        size_t n = 0;
        int r;

        if (!deployment_id_valid(deployment_id))
                return;
        mine = calloc(zhashx_size(d->instances) + 1, sizeof(*mine));
        if (!mine)
                return;
        for (logd_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances))
                if (i->deployment_id && streq(i->deployment_id, deployment_id))
                        mine[n++] = i;
        for (size_t k = 0; k < n; k++)
                logd_instance_drop(mine[k]);
        if (asprintf(&ddir, "%s/deployments/%s", d->dir, deployment_id) < 0)
                ddir = NULL;
        else if ((r = rm_rf(ddir)) < 0)
                log_warning_errno(r, "Failed to remove %s, ignoring: %m", ddir);
        if (n > 0)
                log_info("Deployment %s purged: logs of %zu instances removed", deployment_id, n);
        logd_publish_purged(d, deployment_id);
        logd_state_save_if_dirty(d);
}
