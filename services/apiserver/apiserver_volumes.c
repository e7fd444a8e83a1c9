/* apiserver_volumes.c: named volumes as directories under the state dir, and the /volumes routes (list, create, inspect, delete unless in use). */
#include "services/apiserver/apiserver_volumes.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest.h"

static char *volumes_dir;

int apiserver_volumes_set_dir(const char *state_dir) {
        char *d;

        if (asprintf(&d, "%s/volumes", state_dir) < 0)
                return -ENOMEM;
        free(volumes_dir);
        volumes_dir = d;
        return 0;
}

static const char *dir_of_volumes(void) { return volumes_dir ?: "/var/lib/husk/volumes"; }

int apiserver_volume_path(const char *namespace_, const char *name, char **ret) {
        /* Both become path components: the DNS-label rule is the traversal guard. */
        if (!namespace_ || !name || !manifest_name_is_valid(namespace_) || !manifest_name_is_valid(name))
                return -EINVAL;
        return asprintf(ret, "%s/%s/%s", dir_of_volumes(), namespace_, name) < 0 ? -ENOMEM : 0;
}

int apiserver_volumes_ensure(const char *namespace_, const char *spec_text) {
        json_auto_t *spec = stored_json_load(spec_text);
        volume_spec_t *v = NULL;
        size_t n = 0;
        int r;

        if (!spec && spec_text)
                return -EBADMSG;
        r = manifest_volumes_from_spec(spec, namespace_, &v, &n);
        for (size_t k = 0; r >= 0 && k < n; k++)
                if (v[k].type == VOLUME_NAMED)
                        r = mkdir_p(v[k].source, 0755);
        volumes_free(v, n);
        return r;
}

/* ---- routes ------------------------------------------------------------------------------- */

/* The namespace of the request: ?namespace=, else "default"; 0, or the status of the reply sent. */
static int request_namespace(http_request_t *req, char *buf, size_t size) {
        int r = http_query(req, "namespace", 0, buf, size);

        if (r == 0)
                snprintf(buf, size, "default");
        if (r < 0 || !manifest_name_is_valid(buf))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL, "namespace: a DNS label");
        snprintf(req->audit_namespace, sizeof(req->audit_namespace), "%s", buf);
        return 0;
}

/* The deployments (not deleted) of namespace_ that use the named volume at path, as a JSON array
 * of names; NULL on error (*ret_error). */
static json_t *users_of(http_request_t *req, const char *namespace_, const char *path, int *ret_error) {
        store_deployment_t *a = NULL;
        store_filter_t filter = {};
        json_t *users = json_array();
        size_t n = 0;
        int r;

        filter.namespaces.v[0] = namespace_;
        filter.namespaces.n = 1;
        r = users ? store_deployment_list(req->api->store, &filter, &a, &n) : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const deployment_t *d = &a[i].d;

                if (streq(d->status, DEPLOYMENT_STATUS_DELETED))
                        continue;
                /* The store reads columns only: the volumes come from the spec. */
                r = store_deployment_derive(&a[i]);
                if (r < 0)
                        break;
                for (size_t k = 0; k < d->n_volumes; k++)
                        if (d->volumes[k].type == VOLUME_NAMED && streq(d->volumes[k].source, path)) {
                                json_array_append_new(users, json_string(d->name));
                                break;
                        }
        }
        store_deployment_array_free(a, n);
        if (r < 0) {
                json_decref(users);
                *ret_error = r;
                return NULL;
        }
        return users;
}

/* {id, name, namespace, driver, path, created_at, used_by}. */
static json_t *volume_json(http_request_t *req, const char *namespace_, const char *name, int *ret_error) {
        _cleanup_free_ char *path = NULL;
        char created[32];
        struct stat st;
        json_t *users;
        int r;

        r = apiserver_volume_path(namespace_, name, &path);
        if (r < 0) {
                *ret_error = r;
                return NULL;
        }
        if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
                *ret_error = -ENOENT;
                return NULL;
        }
        users = users_of(req, namespace_, path, ret_error);
        if (!users)
                return NULL;
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "id", name, "name", name, "namespace", namespace_,
                         "driver", "local", "path", path, "created_at",
                         format_timestamp_ms((uint64_t)st.st_mtim.tv_sec * 1000, created, sizeof(created)), "used_by",
                         users);
}

static int reply_no_volume(http_request_t *req, const char *namespace_) {
        return http_reply_problem(req, 404, "not-found", "Not found", NULL, "no volume \"%.64s\" in namespace \"%s\"",
                                  req->arg, namespace_);
}

int route_volumes_list(http_request_t *req) {
        char namespace_[MANIFEST_NAME_MAX + 2], dir[4200];
        json_t *list = json_array();
        struct dirent *de;
        DIR *d;
        int r;

        r = request_namespace(req, namespace_, sizeof(namespace_));
        if (r > 0) {
                json_decref(list);
                return r;
        }
        if (!auth_namespace_allowed(req->who, namespace_))
                return http_reply_json(req, 200, list, NULL);
        snprintf(dir, sizeof(dir), "%s/%s", dir_of_volumes(), namespace_);
        d = opendir(dir);
        while (d && list && (de = readdir(d))) {
                int error = 0;
                json_t *v;

                if (!manifest_name_is_valid(de->d_name))
                        continue;
                v = volume_json(req, namespace_, de->d_name, &error);
                if (v)
                        json_array_append_new(list, v);
                else if (error != -ENOENT)
                        log_warning_errno(error, "Failed to describe volume %s/%s, ignoring: %m", namespace_,
                                          de->d_name);
        }
        if (d)
                closedir(d);
        if (!list)
                return http_reply_internal(req, -ENOMEM, "listing volumes");
        return http_reply_json(req, 200, list, NULL);
}

int route_volume_get(http_request_t *req) {
        char namespace_[MANIFEST_NAME_MAX + 2];
        int r, error = 0;
        json_t *v;

        r = request_namespace(req, namespace_, sizeof(namespace_));
        if (r > 0)
                return r;
        if (!auth_namespace_allowed(req->who, namespace_) || !manifest_name_is_valid(req->arg))
                return reply_no_volume(req, namespace_);
        v = volume_json(req, namespace_, req->arg, &error);
        if (!v && error == -ENOENT)
                return reply_no_volume(req, namespace_);
        if (!v)
                return http_reply_internal(req, error, "reading the volume");
        return http_reply_json(req, 200, v, NULL);
}

int route_volumes_create(http_request_t *req) {
        json_auto_t *input = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name, *namespace_;
        char location[160];
        int r, error = 0;
        json_t *v;

        r = route_read_object(req, "{\"name\", \"namespace\"?}", &input);
        if (r > 0)
                return r;
        name = json_string_value(json_object_get(input, "name"));
        namespace_ = json_string_value(json_object_get(input, "namespace")) ?: "default";
        if (!name || !manifest_name_is_valid(name) || !manifest_name_is_valid(namespace_))
                return http_reply_problem(req, 422, "invalid-volume", "Invalid volume",
                                          json_pack("[{s:s, s:s}]", "field", name ? "namespace" : "name", "reason",
                                                    "a DNS label: 1 to 63 of a-z, 0-9 and '-', not at either end"),
                                          "name and namespace: DNS labels");
        snprintf(req->audit_namespace, sizeof(req->audit_namespace), "%s", namespace_);
        snprintf(req->audit_target, sizeof(req->audit_target), "%s/%s", namespace_, name);
        if (!auth_namespace_allowed(req->who, namespace_))
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                          "this token may not touch namespace \"%s\"", namespace_);
        r = apiserver_volume_path(namespace_, name, &path);
        if (r >= 0) {
                char parent[4200];

                snprintf(parent, sizeof(parent), "%s/%s", dir_of_volumes(), namespace_);
                r = mkdir_p(parent, 0755);
        }
        if (r >= 0 && mkdir(path, 0755) < 0)
                r = -errno;
        if (r == -EEXIST)
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL,
                                          "volume \"%s\" exists in namespace \"%s\"", name, namespace_);
        if (r < 0)
                return http_reply_internal(req, r, "creating the volume");
        log_info("Volume %s/%s created", namespace_, name);
        v = volume_json(req, namespace_, name, &error);
        if (!v)
                return http_reply_internal(req, error, "reading the volume");
        snprintf(location, sizeof(location), "Location: /volumes/%s?namespace=%s\r\n", name, namespace_);
        return http_reply_json(req, 201, v, location);
}

int route_volume_delete(http_request_t *req) {
        char namespace_[MANIFEST_NAME_MAX + 2], names[512];
        _cleanup_free_ char *path = NULL;
        json_auto_t *users = NULL;
        struct stat st;
        size_t len = 0, k;
        json_t *u;
        int r, error = 0;

        r = request_namespace(req, namespace_, sizeof(namespace_));
        if (r > 0)
                return r;
        snprintf(req->audit_target, sizeof(req->audit_target), "%s/%.64s", namespace_, req->arg);
        if (!auth_namespace_allowed(req->who, namespace_) || apiserver_volume_path(namespace_, req->arg, &path) < 0 ||
            stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
                return reply_no_volume(req, namespace_);
        users = users_of(req, namespace_, path, &error);
        if (!users)
                return http_reply_internal(req, error, "finding the volume's deployments");
        if (json_array_size(users) > 0) {
                names[0] = '\0';
                json_array_foreach(users, k, u) len +=
                        (size_t)snprintf(names + len, len < sizeof(names) ? sizeof(names) - len : 0, "%s%s",
                                         k ? ", " : "", json_string_value(u));
                return http_reply_problem(req, 409, "volume-in-use", "Volume in use", NULL,
                                          "volume \"%s\" is used by deployment%s %s in namespace \"%s\": delete %s "
                                          "first",
                                          req->arg, json_array_size(users) == 1 ? "" : "s", names, namespace_,
                                          json_array_size(users) == 1 ? "it" : "them");
        }
        r = rm_rf(path);
        if (r < 0)
                return http_reply_internal(req, r, "removing the volume's directory");
        log_info("Volume %s/%s deleted", namespace_, req->arg);
        return http_reply_no_content(req);
}
