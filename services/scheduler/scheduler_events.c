/* scheduler_events.c: the scheduler's decisions as per-deployment events, recorded through apiserver's event.record. */
#include "services/scheduler/scheduler.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/event.h"

int scheduler_event(scheduler_t *s, const char *deployment_id, const char *level, const char *reason,
                    const char *fmt, ...) {
        bus_call_opts_t opts = { .timeout_ms = s->ctx->config->scheduler.request_timeout_ms };
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        char message[EVENT_MESSAGE_MAX + 1];
        event_t e = {
                .deployment_id = (char *)deployment_id,
                .timestamp = now_realtime_ms(),
                .level = (char *)level,
                .component = (char *)"scheduler",
                .reason = (char *)reason,
                .message = message,
        };
        msgpack_sbuffer buf;
        msgpack_packer pk;
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        log_internal(streq(level, EVENT_LEVEL_INFO) ? LOG_INFO : LOG_WARNING, 0, "Deployment %s: %s: %s", deployment_id,
                 reason, message);

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        event_pack(&pk, &e);
        /* Not idempotent: a resend after a lost reply would store the event twice. An event
         * lost to an apiserver outage is logged above, which is all we can do without state. */
        r = bus_call(s->apiserver, "event.record", &buf, &opts, &reply);
        msgpack_sbuffer_destroy(&buf);
        if (r < 0)
                return log_warning_errno(r, "event.record %s: no answer: %m, ignoring", reason);
        if (reply->error_code) {
                log_warning("event.record %s failed: %s: %s, ignoring", reason, reply->error_code,
                            reply->error_message ?: "");
                return -EREMOTEIO;
        }
        return 0;
}
