/* attachment.c: msgpack codec of netd's attachment (net.attach result, net.* events). */
#include "proto/attachment.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"

void attachment_clear(attachment_t *a) {
        free(a->ports);
        memset(a, 0, sizeof(*a));
}

void attachment_pack(msgpack_packer *pk, const attachment_t *a, size_t extra) {
        msgpack_pack_map(pk, 7 + extra);
        mp_pack_kv_str(pk, "instance_id", a->instance_id);
        mp_pack_kv_str(pk, "tap", a->tap);
        mp_pack_kv_str(pk, "mac", a->mac);
        mp_pack_kv_str(pk, "host_ip", a->host_ip);
        mp_pack_kv_str(pk, "guest_ip", a->guest_ip);
        mp_pack_kv_u64(pk, "prefix", a->prefix);
        mp_pack_str(pk, "ports");
        ports_pack(pk, a->ports, a->n_ports);
}

/* A string key into a fixed buffer (the table check bounded its length already). */
static void copy_str(const msgpack_object *o, const char *key, char *buf, size_t size) {
        const msgpack_object *v = mp_map_get(o, key);

        snprintf(buf, size, "%.*s", (int)v->via.str.size, v->via.str.ptr);
}

static bool ip4_valid(const char *s) {
        struct in_addr addr;

        return inet_pton(AF_INET, s, &addr) == 1;
}

int attachment_unpack(const msgpack_object *o, attachment_t *a, proto_error_t *e) {
        int r;

        memset(a, 0, sizeof(*a));
        r = proto_check(&proto_msg_attachment, o, 0, e);
        if (r < 0)
                return r;
        copy_str(o, "instance_id", a->instance_id, sizeof(a->instance_id));
        copy_str(o, "tap", a->tap, sizeof(a->tap));
        copy_str(o, "mac", a->mac, sizeof(a->mac));
        copy_str(o, "host_ip", a->host_ip, sizeof(a->host_ip));
        copy_str(o, "guest_ip", a->guest_ip, sizeof(a->guest_ip));
        a->prefix = (unsigned)mp_map_get(o, "prefix")->via.u64;
        if (!instance_id_valid(a->instance_id)) {
                r = proto_error_set(e, "instance_id: must be %d lowercase hex digits", INSTANCE_ID_LEN);
                goto malformed;
        }
        if (!ip4_valid(a->host_ip) || !ip4_valid(a->guest_ip)) {
                r = proto_error_set(e, "%s: must be a dotted IPv4 address",
                                    ip4_valid(a->host_ip) ? "guest_ip" : "host_ip");
                goto malformed;
        }
        r = ports_get(o, &a->ports, &a->n_ports);
        if (r < 0) {
                r = r == -ENOMEM ? r : proto_error_set(e, "ports: not valid published ports");
                goto malformed;
        }
        return 0;

malformed:
        attachment_clear(a);
        return r;
}
