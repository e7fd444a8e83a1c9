/* apiserver_webhooks.h: the delivery worker: a thread of its own that sends queued webhook
 * deliveries with libcurl's multi interface, so that no receiver, slow or dead, ever holds a
 * civetweb worker, the bus loop or another receiver's delivery (apiserver_webhooks.c). */
#pragma once

#include <stdint.h>

#include "lib/config.h"
#include "services/apiserver/apiserver_store.h"

typedef struct apiserver_webhooks apiserver_webhooks_t;

/* Start the worker over store with the apiserver.webhooks settings of config (copied). Pending
 * deliveries left by an earlier run are sent as they fall due. */
int apiserver_webhooks_start(apiserver_store_t *store, const husk_config_t *config, apiserver_webhooks_t **ret);
/* Stop and join the worker; attempts in flight are abandoned and stay pending (sent again at
 * the next start: delivery is at least once). NULL-safe. */
void apiserver_webhooks_stop(apiserver_webhooks_t **w);
/* Deliveries were queued: look at the queue now rather than at the next due time. Any thread;
 * NULL-safe. */
void apiserver_webhooks_kick(apiserver_webhooks_t *w);

/* For GET /metrics: totals since this apiserver started, and the queue as the store has it. */
typedef struct webhook_stats {
        uint64_t delivered_total; /* deliveries a receiver took (2xx) */
        uint64_t failed_total;    /* attempts that failed (an error, a timeout, a non-2xx status) */
        uint64_t dead_total;      /* deliveries given up after apiserver.webhooks.max_attempts */
        uint64_t in_flight;       /* attempts under way now */
        uint64_t pending;         /* deliveries waiting, in the store */
} webhook_stats_t;
/* w NULL: the worker's totals are zeros. -errno when the store failed. */
int apiserver_webhooks_stats(apiserver_webhooks_t *w, apiserver_store_t *store, webhook_stats_t *ret);
