/* apiserver_resolve.c: deployment.resolve, what a new instance needs from the store at its
 * start: the values of the secrets its environment names, the files of its config and secret
 * volumes. Each start asks again, so a changed config reaches the next start and a deleted
 * secret fails it (SecretResolutionError) instead of starting it without the value. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/resolve.h"
#include "services/apiserver/apiserver_bus.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_secrets.h"

#define CONFIG_FILE_MODE 0444
#define SECRET_FILE_MODE 0400

/* Why a secret cannot be had, for the error: never its value (there is none to give). */
static int fail_secret(bus_request_t *req, int r, const char *kind, const char *name, const char *ns,
                       const char *field) {
        if (r == -ENOENT)
                return bus_request_fail(req, BUS_ERR_SECRET_RESOLUTION,
                                        "%s \"%s\" (%s) does not exist in namespace \"%s\"", kind, name, field, ns);
        if (r == -EKEYREJECTED || r == -ENOKEY)
                return bus_request_fail(req, BUS_ERR_SECRET_RESOLUTION,
                                        "%s \"%s\" (%s) does not open under this apiserver's secrets key", kind, name,
                                        field);
        log_error_errno(r, "deployment.resolve: reading %s %s/%s failed: %m", kind, ns, name);
        return bus_request_fail(req, BUS_ERR_INTERNAL, "store: %s", strerror(-r));
}

static int resolve_environment(bus_request_t *req, apiserver_t *api, const char *ns, const json_t *spec,
                               resolve_result_t *out) {
        const char *key;
        json_t *value;

        json_object_foreach(json_object_get(spec, "environment"), key, value) {
                const char *name = json_string_value(json_object_get(value, "secretRef"));
                _cleanup_free_ char *entry = NULL;
                char field[300], *plain = NULL;
                size_t n = 0;
                int r;

                if (!name)
                        continue;
                snprintf(field, sizeof(field), "environment.%s", key);
                r = store_secret_reveal(api->store, ns, name, &plain, &n);
                if (r < 0)
                        return fail_secret(req, r, "secret", name, ns, field);
                r = asprintf(&entry, "%s=%s", key, plain);
                secrets_free(plain, n);
                if (r < 0)
                        return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
                r = mp_env_set(&out->secret_environment, entry);
                explicit_bzero(entry, strlen(entry));
                if (r < 0)
                        return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
        }
        return 0;
}

/* Takes data (n bytes) into the last volume of out, also on failure. */
static int add_file(resolve_result_t *out, const char *name, unsigned mode, char *data, size_t size) {
        resolved_volume_t *v = &out->volumes[out->n_volumes - 1];
        resolved_file_t *grown;

        if (v->n_files >= RESOLVE_FILES_MAX) {
                explicit_bzero(data, size);
                free(data);
                return -E2BIG;
        }
        grown = reallocarray(v->files, v->n_files + 1, sizeof(*grown));
        if (!grown) {
                explicit_bzero(data, size);
                free(data);
                return -ENOMEM;
        }
        v->files = grown;
        v->files[v->n_files] =
                (resolved_file_t){ .name = strdup(name), .mode = mode, .data = (uint8_t *)data, .size = size };
        if (!v->files[v->n_files++].name)
                return -ENOMEM;
        return 0;
}

/* A config volume: its key's file (key: given), else one file per key. A secret volume: one
 * file, named by key: or the secret's name. The volumes' own rules (destination, permission)
 * are apiserver_manifest's; what is read here is type, source and key. */
static int resolve_volumes(bus_request_t *req, apiserver_t *api, const char *ns, const json_t *spec,
                           resolve_result_t *out) {
        json_t *vol;
        size_t i;

        json_array_foreach(json_object_get(spec, "volumes"), i, vol) {
                const char *type = json_string_value(json_object_get(vol, "type"));
                const char *source = json_string_value(json_object_get(vol, "source"));
                const char *key = json_string_value(json_object_get(vol, "key"));
                resolved_volume_t *grown;
                char field[64];
                int r = 0;

                if (!type || !source || (!streq(type, "config") && !streq(type, "secret")))
                        continue;
                if (key && (!*key || strchr(key, '/') || streq(key, ".") || streq(key, "..")))
                        return bus_request_fail(req, BUS_ERR_INVALID, "volumes[%zu].key: not a file name", i);

                if (out->n_volumes >= RESOLVE_VOLUMES_MAX || i >= RESOLVE_VOLUMES_MAX)
                        return bus_request_fail(req, BUS_ERR_INVALID, "more than %d volumes", RESOLVE_VOLUMES_MAX);
                grown = reallocarray(out->volumes, out->n_volumes + 1, sizeof(*grown));
                if (!grown)
                        return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
                out->volumes = grown;
                out->volumes[out->n_volumes++] = (resolved_volume_t){ .index = (uint32_t)i };
                snprintf(field, sizeof(field), "volumes[%zu].source", i);
                if (streq(type, "secret")) {
                        char *plain = NULL;
                        size_t n = 0;

                        r = store_secret_reveal(api->store, ns, source, &plain, &n);
                        if (r < 0)
                                return fail_secret(req, r, "secret", source, ns, field);
                        r = add_file(out, key ?: source, SECRET_FILE_MODE, plain, n);
                        if (r < 0)
                                return bus_request_fail(req, BUS_ERR_INTERNAL, "%s", strerror(-r));
                } else {
                        store_config_t c = {};
                        json_auto_t *data = NULL;
                        const char *k;
                        json_t *v;

                        r = store_config_get(api->store, ns, source, &c);
                        if (r == 0 && !streq(c.namespace_, ns)) /* an id of another namespace's */
                                r = -ENOENT;
                        if (r < 0) {
                                store_config_clear(&c);
                                return fail_secret(req, r, "config", source, ns, field);
                        }
                        data = json_loads(c.data, 0, NULL);
                        store_config_clear(&c);
                        if (key && !json_object_get(data, key)) {
                                snprintf(field, sizeof(field), "volumes[%zu].key", i);
                                return bus_request_fail(req, BUS_ERR_SECRET_RESOLUTION,
                                                        "config \"%s\" has no key \"%s\" (%s)", source, key, field);
                        }
                        json_object_foreach(data, k, v) {
                                char *copy;

                                if ((key && !streq(k, key)) || !json_is_string(v))
                                        continue;
                                copy = strdup(json_string_value(v));
                                if (!copy)
                                        return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
                                r = add_file(out, k, CONFIG_FILE_MODE, copy, strlen(copy));
                                if (r < 0)
                                        return bus_request_fail(req, BUS_ERR_INTERNAL, "%s", strerror(-r));
                        }
                }
        }
        return 0;
}

/* Whether the config or secret named `name` exists in ns, by name as deployment.resolve reads
 * it (not by id): 1, 0, or -errno. */
static int ref_exists(apiserver_t *api, const char *kind, const char *ns, const char *name) {
        int r;

        if (streq(kind, "config")) {
                store_config_t c = {};

                r = store_config_get(api->store, ns, name, &c);
                if (r == 0 && (!streq(c.namespace_, ns) || !streq(c.name, name)))
                        r = -ENOENT;
                store_config_clear(&c);
        } else {
                store_secret_t found;

                r = store_secret_get(api->store, ns, name, &found);
                if (r == 0 && (!streq(found.namespace_, ns) || !streq(found.name, name)))
                        r = -ENOENT;
        }
        return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

int apiserver_check_refs(apiserver_t *api, const manifest_t *m, json_t **ret_violations) {
        json_auto_t *violations = json_array();
        const char *key;
        json_t *value, *vol;
        size_t i;

        if (!violations)
                return -ENOMEM;
        /* A config or secret volume names one that must exist (the volumes' own rules are
         * apiserver_manifest_volumes.c's). */
        json_array_foreach(json_object_get(m->spec, "volumes"), i, vol) {
                const char *type = json_string_value(json_object_get(vol, "type"));
                const char *name = json_string_value(json_object_get(vol, "source"));
                char field[64];
                int r;

                if (!type || !name || (!streq(type, "config") && !streq(type, "secret")))
                        continue;
                r = ref_exists(api, type, m->namespace_, name);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                snprintf(field, sizeof(field), "volumes[%zu].source", i);
                json_array_append_new(violations,
                                      json_pack("{s:s, s:o}", "field", field, "reason",
                                                json_sprintf("%s \"%s\" does not exist in namespace \"%s\": create "
                                                             "it first (husk %s create)",
                                                             type, name, m->namespace_, type)));
        }
        json_object_foreach(json_object_get(m->spec, "environment"), key, value) {
                const char *name = json_string_value(json_object_get(value, "secretRef"));
                char field[300];
                int r;

                if (!name)
                        continue;
                r = ref_exists(api, "secret", m->namespace_, name);
                if (r == 0) {
                        snprintf(field, sizeof(field), "environment.%s", key);
                        json_array_append_new(violations,
                                              json_pack("{s:s, s:o}", "field", field, "reason",
                                                        json_sprintf("secret \"%s\" does not exist in namespace "
                                                                     "\"%s\": create it first (husk secret create)",
                                                                     name, m->namespace_)));
                } else if (r < 0)
                        return r;
        }
        if (json_array_size(violations) == 0)
                return 0;
        *ret_violations = TAKE_PTR(violations);
        return -EINVAL;
}

int apiserver_method_resolve(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        apiserver_t *api = userdata;
        _cleanup_free_ char *id = NULL;
        _cleanup_(resolve_result_clear) resolve_result_t res = {};
        _cleanup_(json_decrefp) json_t *spec = NULL;
        store_deployment_t d = {};
        int r;

        r = mp_get_str(req->args, "id", PROTO_ID_MAX, &id);
        if (r < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "id: required string of at most %d bytes", PROTO_ID_MAX);
        r = store_deployment_get(api->store, id, &d);
        if (r == -ENOENT)
                return bus_request_fail(req, BUS_ERR_NOT_FOUND, "deployment %s not found", id);
        if (r < 0) {
                log_error_errno(r, "deployment.resolve %s: store failed: %m", id);
                return bus_request_fail(req, BUS_ERR_INTERNAL, "store: %s", strerror(-r));
        }
        spec = stored_json_load(d.spec);
        r = resolve_environment(req, api, d.d.namespace_, spec, &res);
        if (r >= 0)
                r = resolve_volumes(req, api, d.d.namespace_, spec, &res);
        res.generation = d.d.generation;
        if (r >= 0)
                resolve_result_pack(pk, &res);
        store_deployment_clear(&d);
        return r < 0 ? r : 0;
}
