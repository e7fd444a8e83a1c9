/* logd_state.c: state.json, logd's own small state: which instances it captures, for whom, and which are finished. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/logd/logd.h"

/* The store knows how far each capture file was consumed (its newest record's seq, or the
 * seq file kept at rotations); the "consumed" written here is only for people reading it. */

static int state_path(const logd_t *d, char *buf, size_t size) {
        return snprintf(buf, size, "%s/" LOGD_STATE_FILE, d->dir) >= (int)size ? -ENAMETOOLONG : 0;
}

static int load_one(logd_t *d, json_t *o) {
        const char *id = json_string_value(json_object_get(o, "instance_id"));
        const char *dep = json_string_value(json_object_get(o, "deployment_id"));
        const char *runtime = json_string_value(json_object_get(o, "runtime"));
        json_t *fin = json_object_get(o, "finished_at");
        logd_instance_t *i = NULL;
        int r;

        if (!id || !dep || !instance_id_valid(id) || !deployment_id_valid(dep) || (fin && !json_is_integer(fin)))
                return -EBADMSG;
        if (zhashx_lookup(d->instances, id))
                return -EEXIST;
        r = logd_instance_new(d, id, &i);
        if (r < 0)
                return r;
        r = logd_instance_bind(i, dep, runtime);
        if (r < 0 || zhashx_insert(d->instances, id, i) < 0) {
                logd_instance_free(i);
                return r < 0 ? r : -ENOMEM;
        }
        if (fin && json_integer_value(fin) > 0) {
                i->finished_at = (uint64_t)json_integer_value(fin);
                logd_store_seal(&i->store);
        }
        return 0;
}

int logd_state_load(logd_t *d) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        json_error_t error;
        json_t *o, *list, *e;
        size_t size, k;
        int r;

        r = state_path(d, path, sizeof(path));
        if (r < 0)
                return r;
        r = read_file(path, LOGD_STATE_MAX, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", path);
        o = json_loadb(text, size, 0, &error);
        list = json_object_get(o, "instances");
        if (!json_is_array(list)) {
                /* Everything it said can be found again from the stores (see adopt_stores). */
                log_warning("%s is not a logd state file (%s), starting from the stores alone", path,
                            o ? "no instances list" : error.text);
                json_decref(o);
                return 0;
        }
        json_array_foreach(list, k, e) {
                r = load_one(d, e);
                if (r < 0)
                        log_warning_errno(r, "%s: skipping instance entry %zu: %m", path, k);
        }
        json_decref(o);
        return 0;
}

int logd_state_save(logd_t *d) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        json_t *o = json_object(), *list = json_array();
        int r, q = 0;

        if (!o || !list) {
                json_decref(o);
                json_decref(list);
                return -ENOMEM;
        }
        for (logd_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances)) {
                if (!i->deployment_id)
                        continue;
                q |= json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I, s:I}", "instance_id", i->id,
                                                           "deployment_id", i->deployment_id, "runtime", i->runtime,
                                                           "consumed", (json_int_t)i->store.last_seq, "finished_at",
                                                           (json_int_t)i->finished_at));
        }
        q |= json_object_set_new(o, "version", json_integer(1));
        q |= json_object_set_new(o, "instances", list);
        if (q == 0)
                text = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        r = state_path(d, path, sizeof(path));
        if (r < 0)
                return r;
        r = write_file_atomic(path, text, strlen(text), 0640);
        if (r < 0)
                return r;
        d->state_dirty = false;
        return 0;
}

void logd_state_save_if_dirty(logd_t *d) {
        int r;

        if (!d->state_dirty)
                return;
        r = logd_state_save(d);
        if (r < 0)
                log_warning_errno(r, "Failed to save %s/" LOGD_STATE_FILE ", retrying later: %m", d->dir);
}

static int adopt_one(logd_t *d, const char *dep, const char *id, const char *store_dir) {
        logd_instance_t *i = NULL;
        _cleanup_free_ char *src = NULL;
        struct stat st;
        int r;

        r = logd_instance_new(d, id, &i);
        if (r < 0)
                return r;
        r = logd_instance_bind(i, dep, NULL);
        if (r < 0 || zhashx_insert(d->instances, id, i) < 0) {
                logd_instance_free(i);
                return r < 0 ? r : -ENOMEM;
        }
        /* Still captured (its directory is there): the scan takes it up. Else it is finished,
         * as of its store's last change. */
        if (stat(i->src_dir, &st) < 0 && stat(store_dir, &st) == 0) {
                i->finished_at = (uint64_t)st.st_mtim.tv_sec * 1000 + (uint64_t)st.st_mtim.tv_nsec / 1000000;
                if (i->finished_at == 0)
                        i->finished_at = 1;
                logd_store_seal(&i->store);
        }
        d->state_dirty = true;
        log_info("Instance %s of deployment %s: store found without a state entry, adopted", id, dep);
        return 0;
}

int logd_state_adopt_stores(logd_t *d) {
        _cleanup_free_ char *root = NULL;
        DIR *deps;
        struct dirent *de;

        if (asprintf(&root, "%s/deployments", d->dir) < 0)
                return -ENOMEM;
        deps = opendir(root);
        if (!deps)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(deps))) {
                _cleanup_free_ char *ddir = NULL;
                DIR *insts;
                struct dirent *ie;

                if (!deployment_id_valid(de->d_name) || asprintf(&ddir, "%s/%s", root, de->d_name) < 0)
                        continue;
                insts = opendir(ddir);
                if (!insts)
                        continue;
                while ((ie = readdir(insts))) {
                        _cleanup_free_ char *sdir = NULL;
                        int r;

                        if (!instance_id_valid(ie->d_name) || zhashx_lookup(d->instances, ie->d_name) ||
                            asprintf(&sdir, "%s/%s", ddir, ie->d_name) < 0)
                                continue;
                        r = adopt_one(d, de->d_name, ie->d_name, sdir);
                        if (r < 0)
                                log_warning_errno(r, "Failed to adopt the store %s, ignoring: %m", sdir);
                }
                closedir(insts);
        }
        closedir(deps);
        return 0;
}
