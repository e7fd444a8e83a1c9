/* apiserver_routes_events.c: GET /deployments/{id}/events?level=&limit=&after=&since=, newest page or a follower's next. */
#include <errno.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_json.h"

#define DEFAULT_LIMIT 100

json_t *event_to_json(const event_t *e) {
        char ts[32];

        return json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)e->id, "deployment_id",
                         e->deployment_id, "timestamp", format_timestamp_ms(e->timestamp, ts, sizeof(ts)),
                         "timestamp_ms", (json_int_t)e->timestamp, "level", e->level, "component", e->component,
                         "reason", e->reason, "message", e->message ?: "");
}

/* A non-negative number query parameter: 1 when given, 0 when absent, -EINVAL when malformed. */
static int query_u64(http_request_t *req, const char *name, uint64_t *ret) {
        char buf[24];
        int r;

        r = http_query(req, name, 0, buf, sizeof(buf));
        if (r <= 0)
                return r == 0 ? 0 : -EINVAL;
        return parse_u64(buf, ret) < 0 ? -EINVAL : 1;
}

int route_deployment_events(http_request_t *req) {
        store_event_filter_t f = { .limit = DEFAULT_LIMIT };
        event_t *a = NULL;
        json_t *list;
        char level[16], since[64];
        uint64_t limit;
        size_t n = 0;
        int r;

        r = http_query(req, "level", 0, level, sizeof(level));
        if (r < 0 || (r > 0 && !event_level_valid(level)))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                          "level: use info, warning or error (that level and the more severe)");
        if (r > 0)
                f.min_level = level;
        r = query_u64(req, "limit", &limit);
        if (r < 0 || (r > 0 && (limit == 0 || limit > STORE_EVENTS_LIST_MAX)))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL, "limit: a number from 1 to %d",
                                          STORE_EVENTS_LIST_MAX);
        if (r > 0)
                f.limit = (size_t)limit;
        if (query_u64(req, "after", &f.after_id) < 0)
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                          "after: an event id (events with a larger id are listed)");

        r = http_query(req, "since", 0, since, sizeof(since));
        if (r < 0 || (r > 0 && parse_since_ms(since, now_realtime_ms(), &f.since_ms) < 0))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                          "since: a duration back from now (10m, 1h, 30s) or an RFC 3339 time "
                                          "(2026-11-22T05:30:00Z)");

        r = route_deployment_need(req, NULL);
        if (r > 0)
                return r;
        r = store_event_list(req->api->store, req->arg, &f, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "reading the events");
        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                if (json_array_append_new(list, event_to_json(&a[i])) < 0) {
                        json_decref(list);
                        list = NULL;
                }
        store_event_array_free(a, n);
        if (!list)
                return http_reply_internal(req, ENOMEM, "encoding the events");
        return http_reply_json(req, 200, list, NULL);
}
