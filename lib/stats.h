/* stats.h: a daemon's own counters, gauges and latency histograms, as daemon.stats carries them.
 *
 * Every histogram has the same buckets (STATS_BOUNDS, seconds, Prometheus's `le`): request
 * latencies and scheduler passes alike, so apiserver renders any of them without knowing which.
 * A histogram counts per bucket (not cumulated); the exposition cumulates. */
#pragma once

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_N_BOUNDS 16
extern const double stats_bounds[STATS_N_BOUNDS]; /* 0.0001 s .. 10 s; +Inf is the last bucket */

typedef struct stats_hist {
        uint64_t buckets[STATS_N_BOUNDS + 1]; /* [k]: observations <= bounds[k] and above bounds[k-1]; last: +Inf */
        uint64_t count;
        double sum; /* seconds */
} stats_hist_t;

void stats_hist_observe(stats_hist_t *h, double seconds);

/* One element of daemon.stats's `metrics` (proto/SCHEMA.md): name is Prometheus's without the
 * husk_ prefix, e.g. "scheduler_pass_duration_seconds". */
void stats_pack_counter(msgpack_packer *pk, const char *name, const char *help, double value);
void stats_pack_gauge(msgpack_packer *pk, const char *name, const char *help, double value);
void stats_pack_hist(msgpack_packer *pk, const char *name, const char *help, const stats_hist_t *h);
/* A histogram's buckets, count and sum as keys of a map being packed (3 entries). */
void stats_pack_hist_fields(msgpack_packer *pk, const stats_hist_t *h);
/* A monotonic clock in seconds, for durations. */
double stats_now(void);
