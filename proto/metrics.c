/* metrics.c: msgpack codec of instance.metrics and its parts (net.stats counters, the agent's guest view). */
#include "proto/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/mp.h"

void net_counters_pack(msgpack_packer *pk, const net_counters_t *c, size_t extra) {
        msgpack_pack_map(pk, 4 + extra);
        mp_pack_kv_u64(pk, "rx_bytes", c->rx_bytes);
        mp_pack_kv_u64(pk, "tx_bytes", c->tx_bytes);
        mp_pack_kv_u64(pk, "rx_packets", c->rx_packets);
        mp_pack_kv_u64(pk, "tx_packets", c->tx_packets);
}

int net_counters_unpack(const msgpack_object *o, net_counters_t *c) {
        memset(c, 0, sizeof(*c));
        if (proto_check(&proto_msg_net_counters, o, 0, NULL) < 0)
                return -EBADMSG;
        c->rx_bytes = mp_map_get(o, "rx_bytes")->via.u64;
        c->tx_bytes = mp_map_get(o, "tx_bytes")->via.u64;
        c->rx_packets = mp_map_get(o, "rx_packets")->via.u64;
        c->tx_packets = mp_map_get(o, "tx_packets")->via.u64;
        return 0;
}

void guest_stats_pack(msgpack_packer *pk, const guest_stats_t *g, size_t extra) {
        msgpack_pack_map(pk, 6 + (g->uptime_ms ? 1 : 0) + extra);
        mp_pack_kv_u64(pk, "mem_total_bytes", g->mem_total_bytes);
        mp_pack_kv_u64(pk, "mem_available_bytes", g->mem_available_bytes);
        mp_pack_kv_u64(pk, "mem_used_bytes", g->mem_used_bytes);
        mp_pack_kv_f64(pk, "load1", g->load1);
        mp_pack_kv_f64(pk, "load5", g->load5);
        mp_pack_kv_f64(pk, "load15", g->load15);
        if (g->uptime_ms)
                mp_pack_kv_u64(pk, "uptime_ms", g->uptime_ms);
}

int guest_stats_unpack(const msgpack_object *o, guest_stats_t *g) {
        memset(g, 0, sizeof(*g));
        /* The agent's answer is a guest_stats plus type and id: the same fields, checked alike. */
        if (proto_check(&proto_msg_guest_stats, o, 0, NULL) < 0)
                return -EBADMSG;
        g->mem_total_bytes = mp_map_get(o, "mem_total_bytes")->via.u64;
        g->mem_available_bytes = mp_map_get(o, "mem_available_bytes")->via.u64;
        g->mem_used_bytes = mp_map_get(o, "mem_used_bytes")->via.u64;
        (void)mp_get_f64(o, "load1", &g->load1);
        (void)mp_get_f64(o, "load5", &g->load5);
        (void)mp_get_f64(o, "load15", &g->load15);
        (void)mp_get_u64(o, "uptime_ms", &g->uptime_ms);
        return 0;
}

void instance_metrics_pack(msgpack_packer *pk, const instance_metrics_t *m) {
        msgpack_pack_map(pk, 13 + (m->disk_note[0] ? 1 : 0) + m->has_network + m->has_guest);
        mp_pack_kv_u64(pk, "ts", m->ts);
        mp_pack_kv_str(pk, "instance_id", m->instance_id);
        mp_pack_kv_str(pk, "deployment_id", m->deployment_id);
        mp_pack_kv_str(pk, "runtime", m->runtime);
        mp_pack_kv_i64(pk, "pid", m->pid);
        mp_pack_kv_u64(pk, "interval_ms", m->interval_ms);
        mp_pack_kv_f64(pk, "cpu_seconds", m->cpu_seconds);
        mp_pack_kv_f64(pk, "cpu_percent", m->cpu_percent);
        mp_pack_kv_u64(pk, "rss_bytes", m->rss_bytes);
        mp_pack_kv_u64(pk, "memory_limit_bytes", m->memory_limit_bytes);
        mp_pack_kv_u64(pk, "threads", m->threads);
        mp_pack_kv_u64(pk, "disk_read_bytes", m->disk_read_bytes);
        mp_pack_kv_u64(pk, "disk_write_bytes", m->disk_write_bytes);
        if (m->disk_note[0])
                mp_pack_kv_str(pk, "disk_note", m->disk_note);
        if (m->has_network) {
                mp_pack_str(pk, "network");
                net_counters_pack(pk, &m->network, 0);
        }
        if (m->has_guest) {
                mp_pack_str(pk, "guest");
                guest_stats_pack(pk, &m->guest, 0);
        }
}

static void copy_str(const msgpack_object *o, const char *key, char *buf, size_t size) {
        const msgpack_object *v = mp_map_get(o, key);

        if (v && v->type == MSGPACK_OBJECT_STR)
                snprintf(buf, size, "%.*s", (int)v->via.str.size, v->via.str.ptr);
}

int instance_metrics_unpack(const msgpack_object *o, instance_metrics_t *m, proto_error_t *e) {
        const msgpack_object *sub;
        int r;

        memset(m, 0, sizeof(*m));
        r = proto_check(&proto_msg_instance_metrics, o, 0, e);
        if (r < 0)
                return r;
        m->ts = mp_map_get(o, "ts")->via.u64;
        copy_str(o, "instance_id", m->instance_id, sizeof(m->instance_id));
        copy_str(o, "deployment_id", m->deployment_id, sizeof(m->deployment_id));
        copy_str(o, "runtime", m->runtime, sizeof(m->runtime));
        copy_str(o, "disk_note", m->disk_note, sizeof(m->disk_note));
        (void)mp_get_i64(o, "pid", &m->pid);
        m->interval_ms = mp_map_get(o, "interval_ms")->via.u64;
        (void)mp_get_f64(o, "cpu_seconds", &m->cpu_seconds);
        (void)mp_get_f64(o, "cpu_percent", &m->cpu_percent);
        m->rss_bytes = mp_map_get(o, "rss_bytes")->via.u64;
        m->memory_limit_bytes = mp_map_get(o, "memory_limit_bytes")->via.u64;
        m->threads = mp_map_get(o, "threads")->via.u64;
        m->disk_read_bytes = mp_map_get(o, "disk_read_bytes")->via.u64;
        m->disk_write_bytes = mp_map_get(o, "disk_write_bytes")->via.u64;
        if (!instance_id_valid(m->instance_id)) {
                r = proto_error_set(e, "instance_id: must be %d lowercase hex digits", INSTANCE_ID_LEN);
                goto malformed;
        }
        sub = mp_map_get(o, "network");
        if (sub) {
                if (net_counters_unpack(sub, &m->network) < 0) {
                        r = proto_error_set(e, "network: not TAP counters");
                        goto malformed;
                }
                m->has_network = true;
        }
        sub = mp_map_get(o, "guest");
        if (sub) {
                if (guest_stats_unpack(sub, &m->guest) < 0) {
                        r = proto_error_set(e, "guest: not the guest's stats");
                        goto malformed;
                }
                m->has_guest = true;
        }
        return 0;

malformed:
        memset(m, 0, sizeof(*m));
        return r;
}
