/* apiserver_routes_namespaces.c: /namespaces: list, create, get, delete (refused while it holds
 * deployments, unless ?cascade=true deletes them too). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_http.h"

static json_t *namespace_to_json(const store_namespace_t *ns) {
        char created[32];

        return json_pack("{s:s, s:s?, s:i}", "name", ns->name, "created_at",
                         ns->created_at ? format_timestamp_ms(ns->created_at, created, sizeof(created)) : NULL,
                         "deployments", (int)ns->deployments);
}

/* For a namespace-bound token, the others do not exist. */
static int reply_no_namespace(http_request_t *req) {
        return http_reply_problem(req, 404, "not-found", "Not found", NULL, "no namespace \"%.64s\"", req->arg);
}

int route_namespaces_list(http_request_t *req) {
        store_namespace_t *a = NULL;
        json_t *list;
        size_t n = 0;
        int r;

        r = store_namespace_list(req->api->store, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "listing namespaces");
        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                if (auth_namespace_allowed(req->who, a[i].name))
                        json_array_append_new(list, namespace_to_json(&a[i]));
        free(a);
        return http_reply_json(req, 200, list, NULL);
}

int route_namespace_get(http_request_t *req) {
        store_namespace_t ns;
        int r;

        if (!auth_namespace_allowed(req->who, req->arg))
                return reply_no_namespace(req);
        r = store_namespace_get(req->api->store, req->arg, &ns);
        if (r == -ENOENT)
                return reply_no_namespace(req);
        if (r < 0)
                return http_reply_internal(req, r, "reading the namespace");
        return http_reply_json(req, 200, namespace_to_json(&ns), NULL);
}

int route_namespaces_create(http_request_t *req) {
        json_auto_t *input = NULL;
        auth_identity_t check = {};
        char list[96], location[128];
        store_namespace_t ns;
        const char *name;
        int r;

        r = route_read_object(req, "{\"name\"}", &input);
        if (r > 0)
                return r;
        name = json_string_value(json_object_get(input, "name"));
        /* The rule of manifests' namespace: a DNS label. */
        snprintf(list, sizeof(list), "[\"%.64s\"]", name ?: "");
        if (!name || strchr(name, '"') || strchr(name, '\\') || auth_namespaces_parse(list, &check) < 0)
                return http_reply_problem(req, 422, "invalid-namespace", "Invalid namespace",
                                          json_pack("[{s:s, s:s}]", "field", "name", "reason",
                                                    "a DNS label: 1 to 63 of a-z, 0-9 and '-', not at either end"),
                                          "name: a DNS label");
        snprintf(req->audit_namespace, sizeof(req->audit_namespace), "%s", name);
        if (!auth_namespace_allowed(req->who, name))
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                          "this token may not touch namespace \"%s\"", name);
        r = store_namespace_create(req->api->store, name, &ns);
        if (r == -EEXIST)
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL, "namespace \"%s\" exists already",
                                          name);
        if (r < 0)
                return http_reply_internal(req, r, "creating the namespace");
        snprintf(location, sizeof(location), "Location: /namespaces/%s\r\n", ns.name);
        return http_reply_json(req, 201, namespace_to_json(&ns), location);
}

int route_namespace_delete(http_request_t *req) {
        store_deployment_t *a = NULL;
        store_filter_t filter = {};
        char cascade[8] = "";
        size_t n = 0;
        int r;

        snprintf(req->audit_namespace, sizeof(req->audit_namespace), "%s", req->arg);
        if (!auth_namespace_allowed(req->who, req->arg))
                return reply_no_namespace(req);
        r = http_query(req, "cascade", 0, cascade, sizeof(cascade));
        if (r < 0 || (r > 0 && !streq(cascade, "true") && !streq(cascade, "false")))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL, "cascade: true or false");
        if (streq(req->arg, "default"))
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL,
                                          "namespace \"default\" is where manifests without one go: it stays");
        r = store_namespace_get(req->api->store, req->arg, NULL);
        if (r == -ENOENT)
                return reply_no_namespace(req);
        if (r < 0)
                return http_reply_internal(req, r, "reading the namespace");
        if (streq(cascade, "true")) {
                filter.namespaces.v[0] = req->arg;
                filter.namespaces.n = 1;
                r = store_deployment_list(req->api->store, &filter, &a, &n);
                if (r < 0)
                        return http_reply_internal(req, r, "listing its deployments");
                for (size_t i = 0; i < n && r >= 0; i++) {
                        r = route_deployment_mark_deleted(req->api, a[i].d.id);
                        if (r == -ENOENT) /* gone meanwhile */
                                r = 0;
                }
                store_deployment_array_free(a, n);
                if (r < 0)
                        return http_reply_internal(req, r, "deleting its deployments");
        }
        r = store_namespace_delete(req->api->store, req->arg);
        if (r == -EBUSY)
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL,
                                          "namespace \"%.64s\" still holds deployments: delete them first, or ask "
                                          "for ?cascade=true",
                                          req->arg);
        if (r == -ENOENT)
                return reply_no_namespace(req);
        if (r < 0)
                return http_reply_internal(req, r, "deleting the namespace");
        log_info("Namespace %s deleted by %s%s", req->arg, req->who->name,
                 cascade[0] == 't' ? ", with its deployments" : "");
        return http_reply_no_content(req);
}
