/* stats.c: latency histograms and the daemon.stats metric entries (see stats.h). */
#include "lib/stats.h"

#include <time.h>

#include "lib/mp.h"

const double stats_bounds[STATS_N_BOUNDS] = {
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void stats_hist_observe(stats_hist_t *h, double seconds) {
        size_t k = 0;

        if (seconds < 0)
                seconds = 0;
        while (k < STATS_N_BOUNDS && seconds > stats_bounds[k])
                k++;
        h->buckets[k]++;
        h->count++;
        h->sum += seconds;
}

double stats_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pack_head(msgpack_packer *pk, size_t n, const char *name, const char *type, const char *help) {
        msgpack_pack_map(pk, n);
        mp_pack_kv_str(pk, "name", name);
        mp_pack_kv_str(pk, "type", type);
        mp_pack_kv_str(pk, "help", help);
}

void stats_pack_counter(msgpack_packer *pk, const char *name, const char *help, double value) {
        pack_head(pk, 4, name, "counter", help);
        mp_pack_kv_f64(pk, "value", value);
}

void stats_pack_gauge(msgpack_packer *pk, const char *name, const char *help, double value) {
        pack_head(pk, 4, name, "gauge", help);
        mp_pack_kv_f64(pk, "value", value);
}

void stats_pack_hist_fields(msgpack_packer *pk, const stats_hist_t *h) {
        mp_pack_str(pk, "buckets");
        msgpack_pack_array(pk, STATS_N_BOUNDS + 1);
        for (size_t k = 0; k <= STATS_N_BOUNDS; k++)
                msgpack_pack_uint64(pk, h->buckets[k]);
        mp_pack_kv_u64(pk, "count", h->count);
        mp_pack_kv_f64(pk, "sum", h->sum);
}

void stats_pack_hist(msgpack_packer *pk, const char *name, const char *help, const stats_hist_t *h) {
        pack_head(pk, 6, name, "histogram", help);
        stats_pack_hist_fields(pk, h);
}
