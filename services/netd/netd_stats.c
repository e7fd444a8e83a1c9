/* netd_stats.c: net.stats, each TAP's counters from sysfs, as the guest sees them (vmm-driver's sampler asks every interval). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/metrics.h"
#include "services/netd/netd.h"

static int read_counter(const char *sysfs_net, const char *tap, const char *name, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        char path[256];
        size_t n;
        int r;

        snprintf(path, sizeof(path), "%s/%s/statistics/%s", sysfs_net, tap, name);
        r = read_file(path, 64, &text, NULL);
        if (r < 0)
                return r;
        n = strcspn(text, "\n");
        text[n] = '\0';
        return parse_u64(text, ret) < 0 ? -EBADMSG : 0;
}

int netd_tap_counters(const char *sysfs_net, const char *tap, net_counters_t *ret) {
        net_counters_t c = {};
        int r;

        /* What the host's end of the TAP transmits, the guest receives: swapped here, once. */
        r = read_counter(sysfs_net, tap, "tx_bytes", &c.rx_bytes);
        if (r >= 0)
                r = read_counter(sysfs_net, tap, "rx_bytes", &c.tx_bytes);
        if (r >= 0)
                r = read_counter(sysfs_net, tap, "tx_packets", &c.rx_packets);
        if (r >= 0)
                r = read_counter(sysfs_net, tap, "rx_packets", &c.tx_packets);
        if (r < 0)
                return r;
        *ret = c;
        return 0;
}

static void pack_one(msgpack_packer *pk, const netd_attachment_t *a, const net_counters_t *c) {
        net_counters_pack(pk, c, 2);
        mp_pack_kv_str(pk, "instance_id", a->instance_id);
        mp_pack_kv_str(pk, "tap", a->tap);
}

/* The attachments asked for (every one without instance_ids); one whose TAP cannot be read (gone
 * under us) is left out. */
int netd_method_stats(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        netd_t *n = userdata;
        const msgpack_object *ids = mp_map_get(req->args, "instance_ids");
        _cleanup_free_ net_counters_t *c = NULL;
        _cleanup_free_ const netd_attachment_t **v = NULL;
        size_t k = 0;

        if (ids && ids->type != MSGPACK_OBJECT_ARRAY)
                return bus_request_fail(req, BUS_ERR_INVALID, "instance_ids: must be an array of strings");
        c = calloc(n->n_attachments + 1, sizeof(*c));
        v = calloc(n->n_attachments + 1, sizeof(*v));
        if (!c || !v)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
        for (size_t a = 0; a < n->n_attachments; a++) {
                const netd_attachment_t *at = n->attachments[a];
                bool wanted = !ids;

                for (uint32_t j = 0; ids && j < ids->via.array.size && !wanted; j++)
                        wanted = mp_str_eq(&ids->via.array.ptr[j], at->instance_id);
                if (wanted && netd_tap_counters(NETD_SYSFS_NET, at->tap, &c[k]) >= 0)
                        v[k++] = at;
        }
        msgpack_pack_array(pk, (uint32_t)k);
        for (size_t j = 0; j < k; j++)
                pack_one(pk, v[j], &c[j]);
        return 0;
}
