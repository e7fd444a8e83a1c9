/* apiserver_routes_metrics.c: GET /deployments/{id}/metrics (Ring's fields) and GET /metrics (Prometheus), from the sample cache. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_metrics.h"
#include "services/apiserver/apiserver_prom.h"

#define DAEMON_STATS_TIMEOUT_MS 250 /* a daemon that does not answer this soon is down for the scrape */

static void store_deployment_clearp(store_deployment_t *d) { store_deployment_clear(d); }

/* ---- GET /deployments/{id}/metrics --------------------------------------------------------------- */

/* What Ring sums per deployment, for one instance or all of them. */
typedef struct totals {
        double cpu_percent, cpu_seconds;
        uint64_t rss, limit, threads, disk_read, disk_write;
        net_counters_t net;
        uint64_t sampled_at; /* the newest sample's ts */
} totals_t;

static void add(totals_t *t, const instance_metrics_t *m) {
        t->cpu_percent += m->cpu_percent;
        t->cpu_seconds += m->cpu_seconds;
        t->rss += m->rss_bytes;
        t->limit += m->memory_limit_bytes;
        t->threads += m->threads;
        t->disk_read += m->disk_read_bytes;
        t->disk_write += m->disk_write_bytes;
        t->net.rx_bytes += m->network.rx_bytes;
        t->net.tx_bytes += m->network.tx_bytes;
        t->net.rx_packets += m->network.rx_packets;
        t->net.tx_packets += m->network.tx_packets;
        if (m->ts > t->sampled_at)
                t->sampled_at = m->ts;
}

static json_t *memory_json(uint64_t usage, uint64_t limit) {
        return json_pack("{s:I, s:I, s:f}", "usage_bytes", (json_int_t)usage, "limit_bytes", (json_int_t)limit,
                         "usage_percent", limit ? 100.0 * (double)usage / (double)limit : 0.0);
}

static json_t *network_json(const net_counters_t *n) {
        return json_pack("{s:I, s:I, s:I, s:I}", "rx_bytes", (json_int_t)n->rx_bytes, "tx_bytes",
                         (json_int_t)n->tx_bytes, "rx_packets", (json_int_t)n->rx_packets, "tx_packets",
                         (json_int_t)n->tx_packets);
}

static json_t *guest_json(const instance_metrics_t *m) {
        if (!m->has_guest)
                return json_null();
        return json_pack("{s:I, s:I, s:I, s:f, s:f, s:f}", "memory_total_bytes", (json_int_t)m->guest.mem_total_bytes,
                         "memory_available_bytes", (json_int_t)m->guest.mem_available_bytes, "memory_used_bytes",
                         (json_int_t)m->guest.mem_used_bytes, "load1", m->guest.load1, "load5", m->guest.load5,
                         "load15", m->guest.load15);
}

/* Ring's InstanceStatsOutput, and husk's additions (cpu_seconds, threads, guest, sampled_at). An
 * instance is never restarted in place (a replacement is a new instance): its restart_count is
 * 0, the deployment's counts the replacements. */
static json_t *instance_json(const instance_metrics_t *m) {
        json_t *disk = json_pack("{s:I, s:I}", "read_bytes", (json_int_t)m->disk_read_bytes, "write_bytes",
                                 (json_int_t)m->disk_write_bytes);

        if (disk && m->disk_note[0])
                json_object_set_new(disk, "note", json_string(m->disk_note));
        return json_pack("{s:s, s:s, s:f, s:f, s:o, s:o, s:o, s:{s:I, s:I}, s:I, s:i, s:o, s:I}", "instance_id",
                         m->instance_id, "instance_name", m->instance_id, "cpu_usage_percent", m->cpu_percent,
                         "cpu_seconds", m->cpu_seconds, "memory", memory_json(m->rss_bytes, m->memory_limit_bytes),
                         "network", network_json(&m->network), "disk_io", disk, "pids", "current",
                         (json_int_t)m->threads, "limit", (json_int_t)0, "threads", (json_int_t)m->threads,
                         "restart_count", 0, "guest", guest_json(m), "sampled_at", (json_int_t)m->ts);
}

int route_deployment_metrics(http_request_t *req) {
        _cleanup_(store_deployment_clearp) store_deployment_t d = {};
        _cleanup_free_ instance_metrics_t *v = NULL;
        json_t *o, *instances;
        totals_t t = {};
        size_t n = 0;
        int r;

        r = route_deployment_need(req, &d);
        if (r > 0)
                return r;
        r = apiserver_metrics_samples(req->api->metrics, d.d.id, &v, &n);
        if (r < 0)
                return http_reply_internal(req, r, "reading the metrics");
        instances = json_array();
        for (size_t k = 0; k < n && instances; k++) {
                add(&t, &v[k]);
                if (json_array_append_new(instances, instance_json(&v[k])) < 0)
                        json_decref(TAKE_PTR(instances));
        }
        if (!instances)
                return http_reply_internal(req, ENOMEM, "encoding the metrics");
        o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:o, s:o, s:{s:I, s:I}, s:I, s:o, s:o}",
                      "deployment_id", d.d.id, "deployment_name", d.d.name, "namespace", d.d.namespace_, "runtime",
                      d.d.runtime ?: "", "instance_count", (json_int_t)n, "restart_count", (json_int_t)d.restart_count,
                      "replicas", (json_int_t)d.d.replicas, "total_cpu_usage_percent", t.cpu_percent,
                      "total_cpu_seconds", t.cpu_seconds, "total_memory", memory_json(t.rss, t.limit), "total_network",
                      network_json(&t.net), "total_disk_io", "read_bytes", (json_int_t)t.disk_read, "write_bytes",
                      (json_int_t)t.disk_write, "total_pids", (json_int_t)t.threads, "sampled_at",
                      t.sampled_at ? json_integer((json_int_t)t.sampled_at) : json_null(), "instances", instances);
        if (!o)
                return http_reply_internal(req, ENOMEM, "encoding the metrics");
        return http_reply_json(req, 200, o, NULL);
}

/* ---- GET /metrics -------------------------------------------------------------------------------- */

/* What /metrics says per deployment: its labels and the sums of its instances' samples. */
typedef struct row {
        const store_deployment_t *d;
        size_t instances;
        totals_t t;
        uint64_t guest_used, guest_available;
} row_t;

typedef double (*row_value_fn)(const row_t *r);

static double v_instances(const row_t *r) { return (double)r->instances; }
static double v_replicas(const row_t *r) { return (double)r->d->d.replicas; }
static double v_ready(const row_t *r) { return (double)r->d->d.ready_replicas; }
static double v_restarts(const row_t *r) { return (double)r->d->restart_count; }
static double v_cpu_percent(const row_t *r) { return r->t.cpu_percent; }
static double v_cpu_seconds(const row_t *r) { return r->t.cpu_seconds; }
static double v_rss(const row_t *r) { return (double)r->t.rss; }
static double v_limit(const row_t *r) { return (double)r->t.limit; }
static double v_threads(const row_t *r) { return (double)r->t.threads; }
static double v_rx(const row_t *r) { return (double)r->t.net.rx_bytes; }
static double v_tx(const row_t *r) { return (double)r->t.net.tx_bytes; }
static double v_rx_packets(const row_t *r) { return (double)r->t.net.rx_packets; }
static double v_tx_packets(const row_t *r) { return (double)r->t.net.tx_packets; }
static double v_disk_read(const row_t *r) { return (double)r->t.disk_read; }
static double v_disk_write(const row_t *r) { return (double)r->t.disk_write; }
static double v_guest_used(const row_t *r) { return (double)r->guest_used; }
static double v_guest_available(const row_t *r) { return (double)r->guest_available; }

/* Ring's per-deployment series (ring_deployment_*), husk_-prefixed, plus husk's own. Counters are
 * sums over the live instances: a replaced instance takes its share with it (a counter reset to
 * Prometheus). */
static const struct {
        const char *name, *type, *help;
        row_value_fn value;
        bool sampled; /* only for deployments with a live sample */
} deployment_series[] = {
        { "husk_deployment_instances", "gauge", "Live instances with a recent sample.", v_instances, false },
        { "husk_deployment_replicas", "gauge", "Instances the deployment asks for.", v_replicas, false },
        { "husk_deployment_ready_replicas", "gauge", "Instances ready, as the scheduler last said.", v_ready, false },
        { "husk_deployment_restarts_total", "counter", "Instances started again after failures.", v_restarts, false },
        { "husk_deployment_cpu_usage_percent", "gauge",
          "CPU of the VMM processes over the last interval (100: one CPU).", v_cpu_percent, true },
        { "husk_deployment_cpu_seconds_total", "counter", "User and system CPU time of the live VMM processes.",
          v_cpu_seconds, true },
        { "husk_deployment_memory_usage_bytes", "gauge", "Resident memory of the VMM processes.", v_rss, true },
        { "husk_deployment_memory_limit_bytes", "gauge", "Guest memory of the instances.", v_limit, true },
        { "husk_deployment_pids", "gauge", "Threads of the VMM processes.", v_threads, true },
        { "husk_deployment_network_rx_bytes_total", "counter", "Bytes the guests received on their TAPs.", v_rx, true },
        { "husk_deployment_network_tx_bytes_total", "counter", "Bytes the guests sent on their TAPs.", v_tx, true },
        { "husk_deployment_network_rx_packets_total", "counter", "Packets the guests received.", v_rx_packets, true },
        { "husk_deployment_network_tx_packets_total", "counter", "Packets the guests sent.", v_tx_packets, true },
        { "husk_deployment_disk_read_bytes_total", "counter", "Bytes the VMM processes read from storage.", v_disk_read,
          true },
        { "husk_deployment_disk_write_bytes_total", "counter", "Bytes the VMM processes wrote to storage.",
          v_disk_write, true },
        { "husk_deployment_guest_memory_used_bytes", "gauge", "Memory in use as the guests see it (husk-agent).",
          v_guest_used, true },
        { "husk_deployment_guest_memory_available_bytes", "gauge", "Memory available as the guests see it.",
          v_guest_available, true },
};

static void render_deployments(prom_t *p, const store_deployment_t *ds, size_t n_ds, const bool *shown,
                               const instance_metrics_t *v, size_t n_v) {
        _cleanup_free_ row_t *rows = calloc(n_ds + 1, sizeof(*rows));
        size_t n_rows = 0, j = 0;
        uint64_t newest = 0;

        if (!rows)
                return;
        for (size_t k = 0; k < n_ds; k++)
                if (shown[k])
                        rows[n_rows++].d = &ds[k];
        /* Both sorted? The store lists by namespace and name, the cache by id: a lookup each. */
        for (size_t k = 0; k < n_v; k++) {
                for (j = 0; j < n_rows && !streq(rows[j].d->d.id, v[k].deployment_id); j++)
                        ;
                if (v[k].ts > newest)
                        newest = v[k].ts;
                if (j == n_rows)
                        continue;
                rows[j].instances++;
                add(&rows[j].t, &v[k]);
                rows[j].guest_used += v[k].has_guest ? v[k].guest.mem_used_bytes : 0;
                rows[j].guest_available += v[k].has_guest ? v[k].guest.mem_available_bytes : 0;
        }
        for (size_t s = 0; s < ELEMENTSOF(deployment_series); s++) {
                prom_family(p, deployment_series[s].name, deployment_series[s].type, deployment_series[s].help);
                for (size_t k = 0; k < n_rows; k++) {
                        const char *labels[] = { "deployment", rows[k].d->d.name,
                                                 "namespace",  rows[k].d->d.namespace_,
                                                 "runtime",    rows[k].d->d.runtime ?: "",
                                                 NULL };

                        if (deployment_series[s].sampled && rows[k].instances == 0)
                                continue;
                        prom_sample(p, deployment_series[s].name, labels, deployment_series[s].value(&rows[k]));
                }
        }
        prom_family(p, "husk_metrics_last_sample_timestamp_seconds", "gauge",
                    "When the newest instance sample was taken (unix seconds); 0: none.");
        prom_sample(p, "husk_metrics_last_sample_timestamp_seconds", NULL, (double)newest / 1000.0);
}

/* husk_deployments{namespace, status}: every pair that has deployments. */
static void render_counts(prom_t *p, const store_deployment_t *ds, size_t n_ds, const bool *shown) {
        prom_family(p, "husk_deployments", "gauge", "Deployments by namespace and status.");
        for (size_t k = 0; k < n_ds; k++) {
                size_t count = 0;
                bool first = true;

                if (!shown[k])
                        continue;
                /* The first of its (namespace, status) pair speaks for the pair. */
                for (size_t j = 0; j < n_ds; j++)
                        if (shown[j] && streq(ds[j].d.namespace_, ds[k].d.namespace_) &&
                            streq(ds[j].d.status, ds[k].d.status)) {
                                if (j < k) {
                                        first = false;
                                        break;
                                }
                                count++;
                        }
                if (first) {
                        const char *labels[] = { "namespace", ds[k].d.namespace_, "status", ds[k].d.status, NULL };
                        prom_sample(p, "husk_deployments", labels, (double)count);
                }
        }
}

/* The daemons, one daemon.stats each: up, start time, requests by method, their own metrics. */
typedef struct daemon_view {
        apiserver_metrics_t *metrics;
        husk_daemon_t daemon;
        const char *name;
        bus_reply_t *reply; /* NULL: down */
} daemon_view_t;

static void *ask_daemon(void *arg) {
        daemon_view_t *v = arg;

        if (apiserver_metrics_daemon_stats(v->metrics, v->daemon, DAEMON_STATS_TIMEOUT_MS, &v->reply) < 0 ||
            v->reply->error_code || !v->reply->result || v->reply->result->type != MSGPACK_OBJECT_MAP)
                bus_reply_freep(&v->reply);
        return NULL;
}

/* One daemon.stats per daemon, all at once: a scrape waits for the slowest, not for their sum. */
static void ask_daemons(apiserver_metrics_t *m, daemon_view_t *dv) {
        pthread_t threads[_HUSK_DAEMON_MAX];
        bool started[_HUSK_DAEMON_MAX] = {};
        pthread_attr_t attr;

        /* A bus call needs little stack: 8 MiB mapped and unmapped per scrape showed in its cost. */
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++) {
                dv[d] = (daemon_view_t){ .metrics = m, .daemon = d, .name = husk_daemon_name(d) };
                started[d] = pthread_create(&threads[d], &attr, ask_daemon, &dv[d]) == 0;
                if (!started[d])
                        ask_daemon(&dv[d]);
        }
        pthread_attr_destroy(&attr);
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++)
                if (started[d])
                        pthread_join(threads[d], NULL);
}

static void render_daemon_metric(prom_t *p, const char *daemon, const msgpack_object *m, const double *bounds,
                                 size_t n_bounds) {
        _cleanup_free_ char *name = NULL, *type = NULL, *help = NULL;
        char full[128];
        const char *labels[] = { "daemon", daemon, NULL };
        const msgpack_object *buckets;
        uint64_t count = 0, b[64];
        double v = 0, sum = 0;

        if (mp_get_str(m, "name", 63, &name) < 0 || mp_get_str(m, "type", 16, &type) < 0)
                return;
        (void)mp_get_str(m, "help", 1024, &help);
        snprintf(full, sizeof(full), "husk_%s", name);
        if (streq(type, "histogram")) {
                buckets = mp_map_get(m, "buckets");
                if (!buckets || buckets->type != MSGPACK_OBJECT_ARRAY || buckets->via.array.size != n_bounds + 1 ||
                    n_bounds + 1 > ELEMENTSOF(b))
                        return;
                for (uint32_t k = 0; k <= n_bounds; k++)
                        b[k] = buckets->via.array.ptr[k].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                       ? buckets->via.array.ptr[k].via.u64
                                       : 0;
                (void)mp_get_u64(m, "count", &count);
                (void)mp_get_f64(m, "sum", &sum);
                prom_family(p, full, "histogram", help ?: "");
                prom_histogram(p, full, labels, bounds, n_bounds, b, sum, count);
                return;
        }
        if (mp_get_f64(m, "value", &v) < 0)
                return;
        prom_family(p, full, streq(type, "counter") ? "counter" : "gauge", help ?: "");
        prom_sample(p, full, labels, v);
}

static void render_daemons(prom_t *p, daemon_view_t *dv, size_t n) {
        double bounds[32];

        prom_family(p, "husk_daemon_up", "gauge", "1 when the daemon answered daemon.stats during this scrape.");
        for (size_t k = 0; k < n; k++)
                prom_sample(p, "husk_daemon_up", (const char *[]){ "daemon", dv[k].name, NULL }, dv[k].reply ? 1 : 0);
        prom_family(p, "husk_daemon_start_time_seconds", "gauge", "When the daemon started (unix seconds).");
        for (size_t k = 0; k < n; k++) {
                uint64_t ns = 0;

                if (dv[k].reply && mp_get_u64(dv[k].reply->result, "started_at_ns", &ns) >= 0)
                        prom_sample(p, "husk_daemon_start_time_seconds", (const char *[]){ "daemon", dv[k].name, NULL },
                                    (double)ns / 1e9);
        }
        prom_family(p, "husk_daemon_info", "gauge", "Each daemon's version and host (always 1).");
        for (size_t k = 0; k < n; k++) {
                _cleanup_free_ char *version = NULL, *host = NULL;

                if (!dv[k].reply)
                        continue;
                (void)mp_get_str(dv[k].reply->result, "version", 64, &version);
                (void)mp_get_str(dv[k].reply->result, "host", 255, &host);
                prom_sample(
                        p, "husk_daemon_info",
                        (const char *[]){ "daemon", dv[k].name, "version", version ?: "", "host", host ?: "", NULL },
                        1);
        }

        /* Requests by method: three families, each over every daemon. */
        for (int family = 0; family < 3; family++) {
                static const char *const names[] = { "husk_bus_requests_total", "husk_bus_request_errors_total",
                                                     "husk_bus_request_duration_seconds" };
                static const char *const helps[] = {
                        "Bus requests a daemon answered, by method.",
                        "Bus requests a daemon answered with an error, by method.",
                        "Time from a request's receipt to its answer, by method.",
                };

                prom_family(p, names[family], family == 2 ? "histogram" : "counter", helps[family]);
                for (size_t k = 0; k < n; k++) {
                        const msgpack_object *methods, *bo;
                        size_t n_bounds = 0;

                        if (!dv[k].reply)
                                continue;
                        methods = mp_map_get(dv[k].reply->result, "methods");
                        bo = mp_map_get(dv[k].reply->result, "bounds");
                        if (!methods || methods->type != MSGPACK_OBJECT_ARRAY || !bo ||
                            bo->type != MSGPACK_OBJECT_ARRAY || bo->via.array.size > ELEMENTSOF(bounds))
                                continue;
                        for (uint32_t j = 0; j < bo->via.array.size; j++)
                                bounds[n_bounds++] = bo->via.array.ptr[j].via.f64;
                        for (uint32_t j = 0; j < methods->via.array.size; j++) {
                                const msgpack_object *m = &methods->via.array.ptr[j],
                                                     *buckets = mp_map_get(m, "buckets");
                                _cleanup_free_ char *method = NULL;
                                uint64_t count = 0, errors = 0, b[33];
                                double sum = 0;
                                const char *labels[5];

                                if (mp_get_str(m, "method", 64, &method) < 0)
                                        continue;
                                labels[0] = "daemon", labels[1] = dv[k].name, labels[2] = "method", labels[3] = method;
                                labels[4] = NULL;
                                (void)mp_get_u64(m, "count", &count);
                                (void)mp_get_u64(m, "errors", &errors);
                                (void)mp_get_f64(m, "sum", &sum);
                                if (family == 0)
                                        prom_sample(p, names[0], labels, (double)count);
                                else if (family == 1)
                                        prom_sample(p, names[1], labels, (double)errors);
                                else if (count > 0 && buckets && buckets->type == MSGPACK_OBJECT_ARRAY &&
                                         buckets->via.array.size == n_bounds + 1) {
                                        /* A method never asked has its counters, not 19 lines of zeros. */
                                        for (uint32_t q = 0; q <= n_bounds; q++)
                                                b[q] = buckets->via.array.ptr[q].via.u64;
                                        prom_histogram(p, names[2], labels, bounds, n_bounds, b, sum, count);
                                }
                        }
                }
        }

        /* Each daemon's own (scheduler passes, logd lines, apiserver's webhooks...). */
        for (size_t k = 0; k < n; k++) {
                const msgpack_object *metrics, *bo;
                size_t n_bounds = 0;

                if (!dv[k].reply)
                        continue;
                metrics = mp_map_get(dv[k].reply->result, "metrics");
                bo = mp_map_get(dv[k].reply->result, "bounds");
                if (!metrics || metrics->type != MSGPACK_OBJECT_ARRAY || !bo || bo->type != MSGPACK_OBJECT_ARRAY ||
                    bo->via.array.size > ELEMENTSOF(bounds))
                        continue;
                for (uint32_t j = 0; j < bo->via.array.size; j++)
                        bounds[n_bounds++] = bo->via.array.ptr[j].via.f64;
                for (uint32_t j = 0; j < metrics->via.array.size; j++)
                        render_daemon_metric(p, dv[k].name, &metrics->via.array.ptr[j], bounds, n_bounds);
        }
}

/* apiserver.metrics_auth: the credential and scope a deployments:read route would need. */
static int check_auth(http_request_t *req, auth_identity_t *identity) {
        int r = http_authenticate(req, false, identity);

        if (r == -ENOKEY || r == -EKEYREJECTED)
                return http_reply_problem_headers(req, 401, "unauthorized", "Unauthorized",
                                                  "WWW-Authenticate: Bearer realm=\"husk\"\r\n",
                                                  "GET /metrics needs a credential here (apiserver.metrics_auth): send "
                                                  "Authorization: Bearer <token> with deployments:read");
        if (r < 0)
                return http_reply_internal(req, r, "checking the credential");
        req->who = identity;
        if (!auth_allows(identity, AUTH_SCOPE_DEPLOYMENTS_READ))
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                          "GET /metrics needs the scope deployments:read");
        return 0;
}

int route_metrics(http_request_t *req) {
        apiserver_t *api = req->api;
        store_filter_t all = {};
        store_deployment_t *ds = NULL;
        _cleanup_free_ instance_metrics_t *v = NULL;
        _cleanup_free_ bool *shown = NULL;
        auth_identity_t identity;
        daemon_view_t dv[_HUSK_DAEMON_MAX] = {};
        size_t n_ds = 0, n_v = 0, size;
        const char *text;
        prom_t p;
        int r;

        if (api->metrics_auth) {
                r = check_auth(req, &identity);
                if (r > 0)
                        return r;
        }
        r = store_deployment_list(api->store, &all, &ds, &n_ds);
        if (r < 0)
                return http_reply_internal(req, r, "listing the deployments");
        shown = calloc(n_ds + 1, sizeof(*shown));
        r = shown ? apiserver_metrics_samples(api->metrics, NULL, &v, &n_v) : -ENOMEM;
        if (r < 0 || prom_open(&p) < 0) {
                store_deployment_array_free(ds, n_ds);
                return http_reply_internal(req, r < 0 ? r : ENOMEM, "collecting the metrics");
        }
        /* A namespace-bound token sees its namespaces only, as in GET /deployments. */
        for (size_t k = 0; k < n_ds; k++)
                shown[k] = !req->who || auth_namespace_allowed(req->who, ds[k].d.namespace_);
        ask_daemons(api->metrics, dv);

        render_counts(&p, ds, n_ds, shown);
        render_deployments(&p, ds, n_ds, shown, v, n_v);
        render_daemons(&p, dv, _HUSK_DAEMON_MAX);
        text = prom_text(&p, &size);
        r = http_reply_typed(req, 200, PROM_CONTENT_TYPE, text, size);
        prom_close(&p);
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++)
                bus_reply_freep(&dv[d].reply);
        store_deployment_array_free(ds, n_ds);
        return r;
}
