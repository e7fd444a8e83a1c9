/* apiserver_metrics.c: the cache of instance.metrics samples, and clients for every daemon's daemon.stats. */
#include "services/apiserver/apiserver_metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bus_pool.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "lib/stats.h"
#include "services/apiserver/apiserver.h"

typedef struct entry {
        instance_metrics_t m;
        uint64_t received_ms; /* monotonic */
} entry_t;

struct apiserver_metrics {
        bus_sub_t *events;                     /* vmm-driver's instance.* */
        bus_pool_t *daemons[_HUSK_DAEMON_MAX]; /* daemon.stats */
        pthread_mutex_t lock;                  /* the loop writes, civetweb workers read */
        entry_t *entries;                      /* one per instance, unordered */
        size_t n, cap;
        uint64_t received;
};

static bool stale(const entry_t *e, uint64_t now) {
        uint64_t ttl = (e->m.interval_ms ? e->m.interval_ms : 5000) * METRICS_STALE_INTERVALS;

        return now > e->received_ms + ttl;
}

static entry_t *find(apiserver_metrics_t *m, const char *instance_id) {
        for (size_t k = 0; k < m->n; k++)
                if (streq(m->entries[k].m.instance_id, instance_id))
                        return &m->entries[k];
        return NULL;
}

static void drop(apiserver_metrics_t *m, entry_t *e) { *e = m->entries[--m->n]; }

static void on_sample(apiserver_metrics_t *m, const msgpack_object *body) {
        instance_metrics_t s;
        proto_error_t why = {};
        uint64_t now = now_monotonic_ms();
        entry_t *e;

        if (instance_metrics_unpack(body, &s, &why) < 0) {
                log_debug("Dropping a malformed instance.metrics: %s", why.message);
                return;
        }
        pthread_mutex_lock(&m->lock);
        m->received++;
        e = find(m, s.instance_id);
        if (!e) {
                /* Where a new instance goes, the stale ones make room first. */
                for (size_t k = m->n; k > 0; k--)
                        if (stale(&m->entries[k - 1], now))
                                drop(m, &m->entries[k - 1]);
                if (m->n == m->cap) {
                        size_t cap = m->cap ? m->cap * 2 : 64;
                        entry_t *v = realloc(m->entries, cap * sizeof(*v));

                        if (!v) {
                                pthread_mutex_unlock(&m->lock);
                                return;
                        }
                        m->entries = v;
                        m->cap = cap;
                }
                e = &m->entries[m->n++];
        }
        e->m = s;
        e->received_ms = now;
        pthread_mutex_unlock(&m->lock);
}

static void on_event(const char *type, const msgpack_object *body, void *userdata) {
        apiserver_metrics_t *m = userdata;
        _cleanup_free_ char *id = NULL;
        entry_t *e;

        if (streq(type, BUS_EVENT_INSTANCE_METRICS)) {
                on_sample(m, body);
                return;
        }
        /* An instance that ended has no resources: its last sample goes with it. */
        if ((!streq(type, BUS_EVENT_INSTANCE_EXITED) && !streq(type, BUS_EVENT_INSTANCE_REMOVED)) ||
            mp_get_str(body, "instance_id", PROTO_ID_MAX, &id) < 0)
                return;
        pthread_mutex_lock(&m->lock);
        e = find(m, id);
        if (e)
                drop(m, e);
        pthread_mutex_unlock(&m->lock);
}

int apiserver_metrics_new(const husk_config_t *config, zloop_t *loop, apiserver_metrics_t **ret) {
        const char *vmm_events = config->bus[HUSK_DAEMON_VMM_DRIVER].events;
        apiserver_metrics_t *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        pthread_mutex_init(&m->lock, NULL);
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++) {
                const char *ep = config->bus[d].requests;

                if (!ep)
                        continue;
                r = bus_pool_new(ep, 2, &m->daemons[d]);
                if (r < 0)
                        goto fail;
        }
        if (vmm_events) {
                r = bus_sub_new(&vmm_events, 1, &m->events);
                if (r < 0)
                        goto fail;
                /* instance.metrics, .exited and .removed: the rest of instance.* is dropped here. */
                bus_sub_subscribe(m->events, "instance.");
                r = bus_sub_attach(m->events, loop, on_event, m);
                if (r < 0)
                        goto fail;
        }
        *ret = m;
        return 0;
fail:
        apiserver_metrics_free(&m);
        return r;
}

void apiserver_metrics_free(apiserver_metrics_t **mp) {
        apiserver_metrics_t *m = *mp;

        if (!m)
                return;
        bus_sub_destroy(&m->events);
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++)
                bus_pool_destroy(&m->daemons[d]);
        pthread_mutex_destroy(&m->lock);
        free(m->entries);
        free(m);
        *mp = NULL;
}

static int compare(const void *a, const void *b) {
        const instance_metrics_t *x = a, *y = b;
        int c = strcmp(x->deployment_id, y->deployment_id);

        return c ? c : strcmp(x->instance_id, y->instance_id);
}

int apiserver_metrics_samples(apiserver_metrics_t *m, const char *deployment_id, instance_metrics_t **ret,
                              size_t *ret_n) {
        uint64_t now = now_monotonic_ms();
        instance_metrics_t *v;
        size_t n = 0;

        pthread_mutex_lock(&m->lock);
        v = calloc(m->n + 1, sizeof(*v));
        if (!v) {
                pthread_mutex_unlock(&m->lock);
                return -ENOMEM;
        }
        for (size_t k = 0; k < m->n; k++)
                if (!stale(&m->entries[k], now) &&
                    (!deployment_id || streq(m->entries[k].m.deployment_id, deployment_id)))
                        v[n++] = m->entries[k].m;
        pthread_mutex_unlock(&m->lock);
        qsort(v, n, sizeof(*v), compare);
        *ret = v;
        *ret_n = n;
        return 0;
}

uint64_t apiserver_metrics_received(apiserver_metrics_t *m) {
        uint64_t n;

        pthread_mutex_lock(&m->lock);
        n = m->received;
        pthread_mutex_unlock(&m->lock);
        return n;
}

int apiserver_metrics_daemon_stats(apiserver_metrics_t *m, husk_daemon_t d, uint64_t timeout_ms, bus_reply_t **ret) {
        bus_call_opts_t opts = { .timeout_ms = timeout_ms, .idempotent = true };

        if (!m->daemons[d])
                return -ENOTCONN;
        return bus_pool_call(m->daemons[d], BUS_METHOD_DAEMON_STATS, NULL, &opts, ret);
}

void apiserver_metrics_pack_stats(msgpack_packer *pk, void *userdata) {
        apiserver_t *api = userdata;

        /* Webhook deliveries (issue 15) join here: their counters are apiserver's. */
        msgpack_pack_array(pk, 1);
        stats_pack_counter(pk, "apiserver_instance_samples_total",
                           "instance.metrics samples apiserver received from vmm-driver's sampler.",
                           api->metrics ? (double)apiserver_metrics_received(api->metrics) : 0);
}
