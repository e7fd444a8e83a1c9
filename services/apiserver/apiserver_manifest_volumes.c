/* apiserver_manifest_volumes.c: Ring's volumes (bind, volume, config, plus secret): their checks at apply, and the volumes a stored spec gives the scheduler. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/volume.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest_private.h"
#include "services/apiserver/apiserver_volumes.h"

/* Ring's default, as Docker's: a volume the manifest does not restrict is writable. */
#define PERMISSION_DEFAULT "rw"

static const char *field_of(char *buf, size_t size, size_t i, const char *key) {
        snprintf(buf, size, "volumes[%zu].%s", i, key);
        return buf;
}

/* Absolute, not "/", no ".." component. */
static bool destination_valid(const char *s) {
        if (!s || s[0] != '/' || streq(s, "/") || strlen(s) > MANIFEST_PATH_MAX)
                return false;
        for (const char *p = s; p; p = strchr(p + 1, '/'))
                if (p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))
                        return false;
        return true;
}

static bool check_source(parse_ctx_t *c, size_t i, volume_type_t type, const json_t *source) {
        const char *s = json_string_value(source);
        char field[48], q[96];
        struct stat st;

        field_of(field, sizeof(field), i, "source");
        if (!source || json_is_null(source)) {
                manifest_violation(c, field,
                                   type == VOLUME_BIND     ? "is required: the absolute path of a host directory"
                                   : type == VOLUME_NAMED  ? "is required: the name of the volume"
                                   : type == VOLUME_CONFIG ? "is required: the name of the config"
                                                           : "is required: the name of the secret");
                return false;
        }
        if (!s) {
                manifest_wrong_type(c, field, "a string", source);
                return false;
        }
        if (type != VOLUME_BIND) {
                if (!manifest_name_is_valid(s)) {
                        manifest_violation(c, field,
                                           "%s is not a valid name: use 1-63 lowercase letters, digits and '-', "
                                           "starting and ending with a letter or digit",
                                           manifest_show(source, q, sizeof(q)));
                        return false;
                }
                return true;
        }
        if (s[0] != '/') {
                manifest_violation(c, field, "%s is not an absolute path: give the host directory's absolute path",
                                   manifest_show(source, q, sizeof(q)));
                return false;
        }
        if (strlen(s) > MANIFEST_PATH_MAX || strchr(s, ',')) {
                manifest_violation(c, field, "must be at most %d bytes without ','", MANIFEST_PATH_MAX);
                return false;
        }
        if (stat(s, &st) < 0) {
                manifest_violation(c, field,
                                   "%s does not exist on the host (%m): a bind volume shares an existing "
                                   "directory",
                                   manifest_show(source, q, sizeof(q)));
                return false;
        }
        if (!S_ISDIR(st.st_mode)) {
                manifest_violation(c, field, "%s is not a directory: a bind volume shares a directory",
                                   manifest_show(source, q, sizeof(q)));
                return false;
        }
        return true;
}

/* One entry: {type, source, destination, permission, driver, key}, normalized into *ret. */
static bool check_volume(parse_ctx_t *c, size_t i, const json_t *e, json_t **ret) {
        static const char *const keys[] = { "type", "source", "destination", "permission", "driver", "key" };
        const json_t *type = json_object_get(e, "type"), *destination = json_object_get(e, "destination");
        const json_t *permission = json_object_get(e, "permission"), *driver = json_object_get(e, "driver");
        const json_t *key = json_object_get(e, "key");
        volume_type_t t = VOLUME_BIND;
        char field[48], q[96];
        const char *k;
        json_t *x;
        bool ok = true;

        if (!json_is_object(e)) {
                snprintf(field, sizeof(field), "volumes[%zu]", i);
                manifest_wrong_type(c, field, "a map with type, source, destination and permission", e);
                return false;
        }
        json_object_foreach((json_t *)e, k, x) {
                bool known = false;

                for (size_t j = 0; j < ELEMENTSOF(keys) && !known; j++)
                        known = streq(k, keys[j]);
                if (!known) {
                        char sub[128];

                        snprintf(sub, sizeof(sub), "volumes[%zu].%.64s", i, k);
                        manifest_violation(c, sub,
                                           "unknown field: a volume has type, source, destination, permission, "
                                           "driver and key");
                        ok = false;
                }
        }
        field_of(field, sizeof(field), i, "type");
        if (!json_is_string(type) || volume_type_from_string(json_string_value(type), &t) < 0) {
                if (!type || json_is_null(type))
                        manifest_violation(c, field, "is required: bind, volume, config or secret");
                else
                        manifest_violation(c, field, "%s is not a volume type: use bind, volume, config or secret",
                                           manifest_show(type, q, sizeof(q)));
                ok = false;
        } else if (!check_source(c, i, t, json_object_get(e, "source")))
                ok = false;
        field_of(field, sizeof(field), i, "destination");
        if (!destination || json_is_null(destination)) {
                manifest_violation(c, field, "is required: the absolute path the volume is mounted at in the VM");
                ok = false;
        } else if (!json_is_string(destination)) {
                manifest_wrong_type(c, field, "a string (an absolute path)", destination);
                ok = false;
        } else if (!destination_valid(json_string_value(destination))) {
                manifest_violation(c, field, "%s must be an absolute path other than / and without \"..\"",
                                   manifest_show(destination, q, sizeof(q)));
                ok = false;
        }
        field_of(field, sizeof(field), i, "permission");
        if (permission && !json_is_null(permission) &&
            (!json_is_string(permission) ||
             (!streq(json_string_value(permission), "ro") && !streq(json_string_value(permission), "rw")))) {
                manifest_violation(c, field, "%s is not a permission: use ro or rw (the default)",
                                   manifest_show(permission, q, sizeof(q)));
                ok = false;
        }
        field_of(field, sizeof(field), i, "driver");
        if (driver && !json_is_null(driver) && !(json_is_string(driver) && streq(json_string_value(driver), "local"))) {
                manifest_violation(c, field, "%s is not a volume driver: husk has local only",
                                   manifest_show(driver, q, sizeof(q)));
                ok = false;
        }
        field_of(field, sizeof(field), i, "key");
        if (key && !json_is_null(key) && (!json_is_string(key) || !volume_file_name_valid(json_string_value(key)))) {
                manifest_violation(c, field, "must be the name of one entry of the config or secret");
                ok = false;
        }
        if (!ok)
                return false;
        *ret = json_pack("{s:s, s:O, s:O, s:s}", "type", volume_type_to_string(t), "source",
                         json_object_get(e, "source"), "destination", destination, "permission",
                         permission && !json_is_null(permission) ? json_string_value(permission) : PERMISSION_DEFAULT);
        if (*ret && key && !json_is_null(key) && json_object_set(*ret, "key", (json_t *)key) < 0)
                json_decref(TAKE_PTR(*ret));
        if (!*ret)
                c->oom = true;
        return *ret != NULL;
}

void manifest_parse_volumes(parse_ctx_t *c, const char *key, const json_t *v) {
        _cleanup_(json_decrefp) json_t *normalized = json_array();
        const json_t *e;
        size_t i;
        bool ok = true;

        if (!json_is_array(v))
                return manifest_wrong_type(c, key, "a list", v);
        if (json_array_size(v) > VOLUMES_MAX)
                return manifest_violation(c, key, "has %zu volumes, at most %d are allowed", json_array_size(v),
                                          VOLUMES_MAX);
        if (!normalized) {
                c->oom = true;
                return;
        }
        json_array_foreach(v, i, e) {
                json_t *n = NULL;

                if (!check_volume(c, i, e, &n)) {
                        ok = false;
                        continue;
                }
                json_array_append_new(normalized, n);
                /* Two volumes on one destination: the second would hide the first. */
                for (size_t j = 0; j < i; j++) {
                        const json_t *o = json_array_get(v, j);
                        const char *d1 = json_string_value(json_object_get(o, "destination"));
                        const char *d2 = json_string_value(json_object_get(e, "destination"));
                        char field[48];

                        if (d1 && d2 && streq(d1, d2)) {
                                manifest_violation(c, field_of(field, sizeof(field), i, "destination"),
                                                   "\"%s\" is the destination of volumes[%zu] too: one volume per "
                                                   "destination",
                                                   d2, j);
                                ok = false;
                                break;
                        }
                }
        }
        if (ok)
                manifest_keep(c, key, normalized);
}

/* Ring's rule: a named volume written by several replicas at once is refused. */
void manifest_check_volumes(parse_ctx_t *c, const json_t *input) {
        const json_t *volumes = json_object_get(input, "volumes"), *e;
        size_t i;

        if (c->m.replicas <= 1 || !json_is_array(volumes))
                return;
        /* The input, not the kept list: a volume refused for another reason is told this too. */
        json_array_foreach(volumes, i, e) {
                const char *type = json_string_value(json_object_get(e, "type"));
                const char *permission = json_string_value(json_object_get(e, "permission")) ?: PERMISSION_DEFAULT;
                char field[48];

                if (type && streq(type, "volume") && streq(permission, "rw"))
                        manifest_violation(c, field_of(field, sizeof(field), i, "permission"),
                                           "a read-write named volume cannot be used with replicas > 1 (replicas "
                                           "is %u): the replicas would write one directory at once; use "
                                           "permission: ro, or one replica",
                                           c->m.replicas);
        }
}

int manifest_volumes_from_spec(const json_t *spec, const char *namespace_, volume_spec_t **ret, size_t *ret_n) {
        const json_t *volumes = json_object_get(spec, "volumes"), *e;
        volume_spec_t *a;
        size_t i, n;

        *ret = NULL;
        *ret_n = 0;
        if (!spec)
                return 0;
        n = json_array_size(volumes);
        if (n == 0)
                return 0;
        if (n > VOLUMES_MAX)
                return -EBADMSG;
        a = calloc(n, sizeof(*a));
        if (!a)
                return -ENOMEM;
        json_array_foreach(volumes, i, e) {
                const char *source = json_string_value(json_object_get(e, "source"));
                char tag[VOLUME_TAG_MAX + 1];
                int r;

                if (volume_type_from_string(json_string_value(json_object_get(e, "type")), &a[i].type) < 0 || !source ||
                    !json_string_value(json_object_get(e, "destination"))) {
                        volumes_free(a, n);
                        return -EBADMSG;
                }
                /* Tags as Ring's: the type's prefix and the volume's index. */
                snprintf(tag, sizeof(tag), "%s-%zu", volume_type_tag_prefix(a[i].type), i);
                /* Config and secret files are exported read-only whatever the manifest says. */
                a[i].readonly = streq(json_string_value(json_object_get(e, "permission")) ?: "", "ro") ||
                                a[i].type == VOLUME_CONFIG || a[i].type == VOLUME_SECRET;
                if (!(a[i].tag = strdup(tag)) ||
                    !(a[i].destination = strdup(json_string_value(json_object_get(e, "destination"))))) {
                        volumes_free(a, n);
                        return -ENOMEM;
                }
                r = a[i].type == VOLUME_NAMED ? apiserver_volume_path(namespace_, source, &a[i].source)
                                              : ((a[i].source = strdup(source)) ? 0 : -ENOMEM);
                if (r < 0) {
                        volumes_free(a, n);
                        return r;
                }
        }
        *ret = a;
        *ret_n = n;
        return 0;
}
