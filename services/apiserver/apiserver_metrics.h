/* apiserver_metrics.h: the newest instance.metrics sample of every live instance (vmm-driver's
 * sampler publishes them; apiserver only listens), and the daemons' own daemon.stats: what
 * GET /deployments/{id}/metrics and GET /metrics answer from, without asking vmm-driver. */
#pragma once

#include <czmq.h>
#include <stddef.h>

#include "lib/bus.h"
#include "lib/config.h"
#include "proto/metrics.h"

/* A sample older than this many of its sampler's intervals is dropped: its instance is gone
 * (an instance.exited lost on the way) or vmm-driver is not sampling any more. */
#define METRICS_STALE_INTERVALS 3

typedef struct apiserver_metrics apiserver_metrics_t;

/* Subscribe to vmm-driver's events on loop, and get clients to every daemon's requests socket.
 * Nothing of config is kept. */
int apiserver_metrics_new(const husk_config_t *config, zloop_t *loop, apiserver_metrics_t **ret);
void apiserver_metrics_free(apiserver_metrics_t **m);

/* Copies of the live samples, of one deployment (deployment_id NULL: all), sorted by deployment
 * then instance. Safe from any thread. */
int apiserver_metrics_samples(apiserver_metrics_t *m, const char *deployment_id, instance_metrics_t **ret,
                              size_t *ret_n);
/* Samples received since start (for apiserver's own daemon.stats). */
uint64_t apiserver_metrics_received(apiserver_metrics_t *m);

/* daemon.stats of daemon d, one call (timeout_ms); 0 with *ret, or the call's error. Safe from
 * any thread. */
int apiserver_metrics_daemon_stats(apiserver_metrics_t *m, husk_daemon_t d, uint64_t timeout_ms, bus_reply_t **ret);

/* apiserver's own daemon.stats metrics (bus_stats_fn; userdata: the apiserver_t). */
void apiserver_metrics_pack_stats(msgpack_packer *pk, void *userdata);
