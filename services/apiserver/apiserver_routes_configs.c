/* apiserver_routes_configs.c: /configs: list, create, get, replace (an event to each deployment
 * that uses it), delete; and what /configs and /secrets share: the namespace a request means. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "proto/event.h"
#include "services/apiserver/apiserver_bus.h"
#include "services/apiserver/apiserver_data.h"
#include "services/apiserver/apiserver_http.h"

int route_query_namespace(http_request_t *req, bool required, char ns[static AUTH_NAMESPACE_MAX + 1]) {
        int r = http_query(req, "namespace", 0, ns, AUTH_NAMESPACE_MAX + 1);

        if (r < 0 || (r > 0 && !manifest_name_is_valid(ns)))
                return http_reply_problem(req, 400, "bad-query", "Bad request",
                                          json_pack("[{s:s, s:s}]", "field", "namespace", "reason", "a DNS label"),
                                          "namespace: a DNS label (1 to 63 of a-z, 0-9 and '-')");
        if (r == 0)
                snprintf(ns, AUTH_NAMESPACE_MAX + 1, "%s", required ? "default" : "");
        return 0;
}

int route_namespace_for_write(http_request_t *req, const char *ns) {
        int r;

        snprintf(req->audit_namespace, sizeof(req->audit_namespace), "%s", ns);
        if (!auth_namespace_allowed(req->who, ns))
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                          "this token may not touch namespace \"%s\"", ns);
        /* As for deployments: a namespace that does not exist is made for a caller who may. */
        r = store_namespace_get(req->api->store, ns, NULL);
        if (r == -ENOENT && !auth_allows(req->who, AUTH_SCOPE_NAMESPACES_WRITE))
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                          "namespace \"%s\" does not exist, and creating it needs the scope "
                                          "namespaces:write",
                                          ns);
        if (r == -ENOENT) {
                r = store_namespace_create(req->api->store, ns, NULL);
                if (r == -EEXIST)
                        r = 0;
        }
        if (r < 0)
                return http_reply_internal(req, r, "reading the namespace");
        return 0;
}

static json_t *config_to_json(const store_config_t *c) {
        char created[32], updated[32];

        return json_pack("{s:s, s:s, s:s, s:o, s:I, s:s, s:s}", "id", c->id, "namespace", c->namespace_, "name",
                         c->name, "data", json_loads(c->data, JSON_DECODE_ANY, NULL) ?: json_object(), "version",
                         (json_int_t)c->version, "created_at",
                         format_timestamp_ms(c->created_at, created, sizeof(created)), "updated_at",
                         format_timestamp_ms(c->updated_at, updated, sizeof(updated)));
}

static int reply_invalid(http_request_t *req, const char *slug, const char *title, json_t *violations) {
        size_t n = json_array_size(violations);

        return http_reply_problem(req, 422, slug, title, violations, "%s has %zu problem%s to fix",
                                  streq(slug, "invalid-config") ? "the config" : "the secret", n, n == 1 ? "" : "s");
}

int route_configs_list(http_request_t *req) {
        char ns[AUTH_NAMESPACE_MAX + 1];
        store_config_t *a = NULL;
        json_t *list;
        size_t n = 0;
        int r;

        r = route_query_namespace(req, false, ns);
        if (r > 0)
                return r;
        r = store_config_list(req->api->store, ns[0] ? ns : NULL, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "listing configs");
        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                if (auth_namespace_allowed(req->who, a[i].namespace_))
                        json_array_append_new(list, config_to_json(&a[i]));
        store_config_array_free(a, n);
        return http_reply_json(req, 200, list, NULL);
}

int route_configs_create(http_request_t *req) {
        json_auto_t *input = NULL, *violations = json_array(), *empty = json_object();
        _cleanup_free_ char *data = NULL;
        char location[128];
        store_config_t c = {};
        const char *name, *ns;
        int r;

        r = route_read_object(req, "{\"name\", \"namespace\"?, \"data\": {KEY: VALUE}}", &input);
        if (r > 0)
                return r;
        (void)data_check_name_namespace(input, violations, &name, &ns);
        if (json_array_size(violations) == 0)
                (void)config_data_check(json_object_get(input, "data") ?: empty, violations, &data);
        if (json_array_size(violations) > 0)
                return reply_invalid(req, "invalid-config", "Invalid config", TAKE_PTR(violations));
        snprintf(req->audit_target, sizeof(req->audit_target), "%s/%s", ns, name);
        r = route_namespace_for_write(req, ns);
        if (r > 0)
                return r;
        r = store_config_create(req->api->store, ns, name, data, &c);
        if (r == -EEXIST)
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL,
                                          "config \"%s\" exists already in namespace \"%s\": PUT /configs/{id} "
                                          "replaces its data",
                                          name, ns);
        if (r < 0)
                return http_reply_internal(req, r, "creating the config");
        log_info("Config %s/%s (%s) created by %s", c.namespace_, c.name, c.id, req->who->name);
        snprintf(location, sizeof(location), "Location: /configs/%s\r\n", c.id);
        r = http_reply_json(req, 201, config_to_json(&c), location);
        store_config_clear(&c);
        return r;
}

/* The config req->arg names (its id, or its name in ?namespace=, default "default"): 0 with
 * *ret, else the status of the reply sent. Outside a bound token's namespaces it does not exist. */
static int need_config(http_request_t *req, store_config_t *ret) {
        char ns[AUTH_NAMESPACE_MAX + 1];
        int r;

        r = route_query_namespace(req, true, ns);
        if (r > 0)
                return r;
        r = store_config_get(req->api->store, ns, req->arg, ret);
        if (r == 0 && !auth_namespace_allowed(req->who, ret->namespace_)) {
                store_config_clear(ret);
                r = -ENOENT;
        }
        if (r == -ENOENT)
                return http_reply_problem(req, 404, "not-found", "Not found", NULL,
                                          "no config \"%.64s\" in namespace "
                                          "\"%s\"",
                                          req->arg, ns);
        if (r < 0)
                return http_reply_internal(req, r, "reading the config");
        snprintf(req->audit_namespace, sizeof(req->audit_namespace), "%s", ret->namespace_);
        snprintf(req->audit_target, sizeof(req->audit_target), "%s/%s", ret->namespace_, ret->name);
        return 0;
}

int route_config_get(http_request_t *req) {
        store_config_t c = {};
        int r;

        r = need_config(req, &c);
        if (r > 0)
                return r;
        r = http_reply_json(req, 200, config_to_json(&c), NULL);
        store_config_clear(&c);
        return r;
}

/* Whether a stored spec uses config name: a volume of type config with that source. */
static bool spec_uses_config(const char *spec_text, const char *name) {
        json_auto_t *spec = json_loads(spec_text, 0, NULL);
        json_t *v;
        size_t i;

        json_array_foreach(json_object_get(spec, "volumes"), i, v) {
                const char *type = json_string_value(json_object_get(v, "type"));
                const char *source = json_string_value(json_object_get(v, "source"));

                if (type && source && streq(type, "config") && streq(source, name))
                        return true;
        }
        return false;
}

/* Running instances keep what they started with (vmm-driver wrote their files at start); each
 * deployment that uses the config is told, so that nobody wonders why a guest sees the old data. */
static void tell_users(apiserver_t *api, const store_config_t *c) {
        store_filter_t filter = { .namespaces = { .v = { c->namespace_ }, .n = 1 } };
        store_deployment_t *a = NULL;
        size_t n = 0;

        if (store_deployment_list(api->store, &filter, &a, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++)
                if (!streq(a[i].d.status, DEPLOYMENT_STATUS_DELETED) && spec_uses_config(a[i].spec, c->name))
                        (void)apiserver_event(api, a[i].d.id, EVENT_LEVEL_INFO, EVENT_CONFIG_CHANGED,
                                              "config %s changed (version %llu): running instances keep the data "
                                              "they started with; instances started from now on get version %llu",
                                              c->name, (unsigned long long)c->version, (unsigned long long)c->version);
        store_deployment_array_free(a, n);
}

int route_config_update(http_request_t *req) {
        json_auto_t *input = NULL, *violations = json_array();
        _cleanup_free_ char *data = NULL;
        store_config_t c = {}, updated = {};
        char id[STORE_UUID_LEN + 1];
        int r;

        r = need_config(req, &c);
        if (r > 0)
                return r;
        snprintf(id, sizeof(id), "%s", c.id);
        store_config_clear(&c);
        r = route_read_object(req, "{\"data\": {KEY: VALUE}}", &input);
        if (r > 0)
                return r;
        (void)config_data_check(json_object_get(input, "data"), violations, &data);
        if (json_array_size(violations) > 0)
                return reply_invalid(req, "invalid-config", "Invalid config", TAKE_PTR(violations));
        r = store_config_update(req->api->store, id, data, &updated);
        if (r == -ENOENT)
                return http_reply_problem(req, 404, "not-found", "Not found", NULL, "config \"%.64s\" is gone",
                                          req->arg);
        if (r < 0)
                return http_reply_internal(req, r, "updating the config");
        if (r > 0) {
                log_info("Config %s/%s (%s) updated to version %llu by %s", updated.namespace_, updated.name,
                         updated.id, (unsigned long long)updated.version, req->who->name);
                tell_users(req->api, &updated);
        }
        r = http_reply_json(req, 200, config_to_json(&updated),
                            r > 0 ? "Husk-Apply-Result: updated\r\n" : "Husk-Apply-Result: unchanged\r\n");
        store_config_clear(&updated);
        return r;
}

int route_config_delete(http_request_t *req) {
        store_config_t c = {};
        int r;

        r = need_config(req, &c);
        if (r > 0)
                return r;
        r = store_config_delete(req->api->store, c.id);
        if (r < 0 && r != -ENOENT) {
                store_config_clear(&c);
                return http_reply_internal(req, r, "deleting the config");
        }
        log_info("Config %s/%s (%s) deleted by %s", c.namespace_, c.name, c.id, req->who->name);
        store_config_clear(&c);
        return http_reply_no_content(req);
}
