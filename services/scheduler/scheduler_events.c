/* scheduler_events.c: the scheduler's decisions as per-deployment events, recorded through apiserver's event.record. */
#include "services/scheduler/scheduler.h"

#include <stdarg.h>
#include <stdio.h>

#include "lib/log.h"
#include "proto/event.h"

void scheduler_event(scheduler_t *s, const char *deployment_id, const char *level, const char *reason, const char *fmt,
                     ...) {
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

        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        log_internal(streq(level, EVENT_LEVEL_INFO) ? LOG_INFO : LOG_WARNING, 0, "Deployment %s: %s: %s", deployment_id,
                     reason, message);
        if (s->pass && scheduler_pass_stale(s->pass))
                return; /* apiserver does not answer: the log above is all we can do */

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        event_pack(&pk, &e);
        /* Not idempotent: a resend after a lost reply would store the event twice. An event
         * lost to an apiserver outage is logged above, which is all we can do without state. */
        (void)scheduler_call(s, s->apiserver, s->pass, BUS_METHOD_EVENT_RECORD, &buf, false, NULL, NULL);
        msgpack_sbuffer_destroy(&buf);
}
