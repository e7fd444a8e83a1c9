/* apiserver_routes_audit.c: GET /namespaces/{id}/audit and GET /audit, the audit log read back. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "services/apiserver/apiserver_http.h"

static json_t *audit_to_json(const store_audit_t *e) {
        char ts[32];

        return json_pack("{s:I, s:s, s:s?, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "id", (json_int_t)e->id, "timestamp",
                         format_timestamp_ms(e->timestamp, ts, sizeof(ts)), "namespace", e->namespace_, "actor",
                         e->actor, "actor_id", e->actor_id, "via", e->via, "action", e->action, "target", e->target,
                         "source", e->source, "status", e->status);
}

static int reply_audit(http_request_t *req, const char *namespace_) {
        store_audit_t *a = NULL;
        char value[16] = "";
        uint64_t limit = 100;
        json_t *list;
        size_t n = 0;
        int r;

        r = http_query(req, "limit", 0, value, sizeof(value));
        if (r < 0 || (r > 0 && (parse_u64(value, &limit) < 0 || limit == 0 || limit > STORE_AUDIT_LIST_MAX)))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL, "limit: 1 to %d",
                                          STORE_AUDIT_LIST_MAX);
        r = store_audit_list(req->api->store, namespace_, (size_t)limit, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "reading the audit log");
        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                json_array_append_new(list, audit_to_json(&a[i]));
        store_audit_array_free(a, n);
        return http_reply_json(req, 200, list, NULL);
}

int route_namespace_audit(http_request_t *req) {
        /* Another namespace than a bound token's does not exist for it. */
        if (!auth_namespace_allowed(req->who, req->arg))
                return http_reply_problem(req, 404, "not-found", "Not found", NULL, "no namespace \"%.64s\"", req->arg);
        return reply_audit(req, req->arg);
}

int route_audit(http_request_t *req) { return reply_audit(req, NULL); }
