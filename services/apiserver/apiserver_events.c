/* apiserver_events.c: the one path of per-deployment events: store, then publish event.<level>.
 *
 * Other daemons record events with the event.record request; apiserver's own (Created,
 * IgnoredField, ...) take the same function, so every event is persisted before anyone sees it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/schema.h"
#include "services/apiserver/apiserver_bus.h"
#include "services/apiserver/apiserver_webhooks.h"

static void sbuffer_destroyp(msgpack_sbuffer *b) { msgpack_sbuffer_destroy(b); }

static void publish(apiserver_t *api, const event_t *e) {
        _cleanup_(sbuffer_destroyp) msgpack_sbuffer buf = {};
        msgpack_packer pk;
        char type[32];
        int r;

        if (!api->pub)
                return;
        snprintf(type, sizeof(type), "event.%s", e->level);
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        event_pack(&pk, e);
        r = bus_pub_send(api->pub, type, buf.data, buf.size);
        if (r < 0)
                log_warning_errno(r, "Failed to publish %s for %s: %m, ignoring", type, e->deployment_id);
}

int apiserver_event_record(apiserver_t *api, event_t *e) {
        int r;

        r = store_event_record(api->store, e);
        if (r < 0)
                return r;
        if (r > 0) /* deliveries queued */
                apiserver_webhooks_kick(api->webhooks);
        publish(api, e);
        return 0;
}

int apiserver_event(apiserver_t *api, const char *deployment_id, const char *level, const char *reason, const char *fmt,
                    ...) {
        char message[EVENT_MESSAGE_MAX + 1];
        event_t e = {
                .deployment_id = (char *)deployment_id,
                .level = (char *)level,
                .component = (char *)"apiserver",
                .reason = (char *)reason,
                .message = message,
        };
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        r = apiserver_event_record(api, &e);
        if (r < 0)
                log_warning_errno(r, "Failed to record event %s for %s: %m, ignoring", reason, deployment_id);
        return r;
}

int apiserver_method_event_record(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        apiserver_t *api = userdata;
        proto_error_t why = {};
        event_t e = {};
        int r;

        if (proto_check(&proto_msg_event_record, req->args, 0, &why) < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "%s", why.message);
        r = event_unpack(req->args, &e);
        if (r < 0)
                return bus_request_fail(req, BUS_ERR_INVALID,
                                        "an event needs deployment_id, level (info, warning, error), component, "
                                        "reason and message strings within their bounds");
        e.id = 0;
        r = apiserver_event_record(api, &e);
        if (r == -ENOENT) {
                r = bus_request_fail(req, BUS_ERR_NOT_FOUND, "deployment %s not found", e.deployment_id);
                event_clear(&e);
                return r;
        }
        if (r < 0) {
                log_error_errno(r, "event.record %s: store failed: %m", e.deployment_id);
                event_clear(&e);
                return bus_request_fail(req, BUS_ERR_INTERNAL, "store: %s", strerror(-r));
        }
        msgpack_pack_map(pk, 1);
        mp_pack_kv_u64(pk, "id", e.id);
        event_clear(&e);
        return 0;
}
