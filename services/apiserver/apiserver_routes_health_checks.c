/* apiserver_routes_health_checks.c: GET /deployments/{id}/health-checks, the scheduler's probes and their recent results (health.list). */
#include <errno.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_json.h"

#define HEALTH_TIMEOUT_MS 1000

int route_deployment_health_checks(http_request_t *req) {
        static const bus_call_opts_t opts = { .timeout_ms = HEALTH_TIMEOUT_MS, .idempotent = true };
        apiserver_t *api = req->api;
        bus_reply_t *reply = NULL;
        msgpack_sbuffer args;
        msgpack_packer pk;
        json_t *list;
        int r;

        r = route_deployment_need(req, NULL);
        if (r > 0)
                return r;

        msgpack_sbuffer_init(&args);
        msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "deployment_id", req->arg);
        r = bus_pool_call(api->scheduler, BUS_METHOD_HEALTH_LIST, &args, &opts, &reply);
        msgpack_sbuffer_destroy(&args);
        if (r < 0)
                return http_reply_problem(req, 503, "unavailable", "Service unavailable", NULL,
                                          "husk-scheduler, which runs the health checks, did not answer within %d ms",
                                          HEALTH_TIMEOUT_MS);
        if (reply->error_code || !reply->result || reply->result->type != MSGPACK_OBJECT_ARRAY) {
                r = http_reply_problem(req, 502, "bad-gateway", "Bad gateway", NULL, "husk-scheduler answered %s: %s",
                                       reply->error_code ?: "something that is not a list", reply->error_message ?: "");
                bus_reply_free(reply);
                return r;
        }
        list = msgpack_to_json(reply->result);
        bus_reply_free(reply);
        if (!list)
                return http_reply_internal(req, ENOMEM, "encoding the health checks");
        return http_reply_json(req, 200, list, NULL);
}
