/* apiserver_routes_health.c: GET /healthz, which is only "ok" when the database answers. */
#include <string.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_http.h"

int route_healthz(http_request_t *req) {
        int r;

        r = store_ping(req->api->store);
        if (r < 0) {
                log_warning_errno(r, "Health check: the database does not answer: %m");
                return http_reply_problem(req, 503, "unavailable", "Service unavailable", NULL,
                                          "the database does not answer: %s", strerror(-r));
        }
        /* Ring's body, and husk's own "status" that scripts already read. */
        return http_reply_json(req, 200, json_pack("{s:s, s:s}", "state", "UP", "status", "ok"), NULL);
}
