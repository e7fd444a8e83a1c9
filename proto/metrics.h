/* metrics.h: an instance's resource sample (instance.metrics, published by vmm-driver's sampler,
 * cached by apiserver), with its parts: the TAP counters netd answers net.stats with and the
 * guest's own view husk-agent answers a stats frame with (proto/SCHEMA.md, "Metrics";
 * proto/schema.yaml, instance_metrics, net_stats, guest_stats). One codec for every side. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/instance.h"
#include "proto/schema.h"

/* As the guest sees them: netd swaps the TAP's counters (the host's tx is the guest's rx). */
typedef struct net_counters {
        uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
} net_counters_t;

typedef struct guest_stats {
        uint64_t mem_total_bytes, mem_available_bytes, mem_used_bytes;
        double load1, load5, load15;
        uint64_t uptime_ms; /* 0: not said */
} guest_stats_t;

typedef struct instance_metrics {
        uint64_t ts; /* unix ms of the sample */
        char instance_id[INSTANCE_ID_LEN + 1];
        char deployment_id[PROTO_ID_MAX + 1];
        char runtime[PROTO_WORD_MAX + 1];
        int64_t pid;
        uint64_t interval_ms; /* the sampler's period: a sample older than a few of them is stale */
        double cpu_seconds;   /* user + system time of the VMM process since it started */
        double cpu_percent;   /* over the last interval (100 = one host CPU busy) */
        uint64_t rss_bytes, memory_limit_bytes, threads;
        uint64_t disk_read_bytes, disk_write_bytes;
        char disk_note[160]; /* "": disk counters read; else why they are zeros */
        bool has_network;
        net_counters_t network;
        bool has_guest;
        guest_stats_t guest;
} instance_metrics_t;

void net_counters_pack(msgpack_packer *pk, const net_counters_t *c, size_t extra);
int net_counters_unpack(const msgpack_object *o, net_counters_t *c);
void guest_stats_pack(msgpack_packer *pk, const guest_stats_t *g, size_t extra);
int guest_stats_unpack(const msgpack_object *o, guest_stats_t *g);

void instance_metrics_pack(msgpack_packer *pk, const instance_metrics_t *m);
/* Decode; unknown keys are ignored. -EBADMSG with e naming the field when something is missing,
 * of the wrong type or out of bounds; *m is then zeroed. */
int instance_metrics_unpack(const msgpack_object *o, instance_metrics_t *m, proto_error_t *e);
