/* apiserver_routes_secrets.c: /secrets: list, create, get, delete. No answer ever holds a value:
 * a secret goes in once and comes out only to a guest (deployment.resolve). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_data.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_secrets.h"

static json_t *secret_to_json(const store_secret_t *s) {
        char created[32];

        return json_pack("{s:s, s:s, s:s, s:s}", "id", s->id, "namespace", s->namespace_, "name", s->name, "created_at",
                         format_timestamp_ms(s->created_at, created, sizeof(created)));
}

int route_secrets_list(http_request_t *req) {
        char ns[AUTH_NAMESPACE_MAX + 1];
        store_secret_t *a = NULL;
        json_t *list;
        size_t n = 0;
        int r;

        r = route_query_namespace(req, false, ns);
        if (r > 0)
                return r;
        r = store_secret_list(req->api->store, ns[0] ? ns : NULL, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "listing secrets");
        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                if (auth_namespace_allowed(req->who, a[i].namespace_))
                        json_array_append_new(list, secret_to_json(&a[i]));
        free(a);
        return http_reply_json(req, 200, list, NULL);
}

/* The body holds the value: it is wiped once read, and no message below quotes it. */
int route_secrets_create(http_request_t *req) {
        json_auto_t *input = NULL, *violations = json_array();
        const json_t *value;
        char location[128];
        store_secret_t s = {};
        const char *name, *ns;
        int r;

        r = route_read_object(req, "{\"name\", \"namespace\"?, \"value\"}", &input);
        if (r > 0)
                return r;
        (void)data_check_name_namespace(input, violations, &name, &ns);
        value = json_object_get(input, "value");
        (void)secret_value_check(value, violations);
        if (json_array_size(violations) > 0) {
                size_t n = json_array_size(violations);
                return http_reply_problem(req, 422, "invalid-secret", "Invalid secret", TAKE_PTR(violations),
                                          "the secret has %zu problem%s to fix", n, n == 1 ? "" : "s");
        }
        snprintf(req->audit_target, sizeof(req->audit_target), "%s/%s", ns, name);
        r = route_namespace_for_write(req, ns);
        if (r > 0)
                return r;
        r = store_secret_create(req->api->store, ns, name, json_string_value(value), json_string_length(value), &s);
        if (r == -EEXIST)
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL,
                                          "secret \"%s\" exists already in namespace \"%s\": delete it first to "
                                          "give it another value",
                                          name, ns);
        if (r < 0)
                return http_reply_internal(req, r, "storing the secret");
        log_info("Secret %s/%s (%s) created by %s", s.namespace_, s.name, s.id, req->who->name);
        snprintf(location, sizeof(location), "Location: /secrets/%s\r\n", s.id);
        return http_reply_json(req, 201, secret_to_json(&s), location);
}

static int need_secret(http_request_t *req, store_secret_t *ret) {
        char ns[AUTH_NAMESPACE_MAX + 1];
        int r;

        r = route_query_namespace(req, true, ns);
        if (r > 0)
                return r;
        r = store_secret_get(req->api->store, ns, req->arg, ret);
        if (r == 0 && !auth_namespace_allowed(req->who, ret->namespace_))
                r = -ENOENT;
        if (r == -ENOENT)
                return http_reply_problem(req, 404, "not-found", "Not found", NULL,
                                          "no secret \"%.64s\" in namespace \"%s\"", req->arg, ns);
        if (r < 0)
                return http_reply_internal(req, r, "reading the secret");
        snprintf(req->audit_namespace, sizeof(req->audit_namespace), "%s", ret->namespace_);
        snprintf(req->audit_target, sizeof(req->audit_target), "%s/%s", ret->namespace_, ret->name);
        return 0;
}

int route_secret_get(http_request_t *req) {
        store_secret_t s;
        int r;

        r = need_secret(req, &s);
        if (r > 0)
                return r;
        return http_reply_json(req, 200, secret_to_json(&s), NULL);
}

int route_secret_delete(http_request_t *req) {
        store_secret_t s;
        int r;

        r = need_secret(req, &s);
        if (r > 0)
                return r;
        r = store_secret_delete(req->api->store, s.id);
        if (r < 0 && r != -ENOENT)
                return http_reply_internal(req, r, "deleting the secret");
        log_info("Secret %s/%s (%s) deleted by %s", s.namespace_, s.name, s.id, req->who->name);
        return http_reply_no_content(req);
}
