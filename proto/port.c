/* port.c: msgpack codec of published-port specs. */
#include "proto/port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"

const char *port_protocol_to_string(port_protocol_t p) { return p == PORT_UDP ? "udp" : "tcp"; }

int port_protocol_from_string(const char *s, port_protocol_t *ret) {
        if (s && streq(s, "tcp"))
                *ret = PORT_TCP;
        else if (s && streq(s, "udp"))
                *ret = PORT_UDP;
        else
                return -EINVAL;
        return 0;
}

void ports_pack(msgpack_packer *pk, const port_spec_t *ports, size_t n) {
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
                msgpack_pack_map(pk, ports[i].host_ip[0] ? 4 : 3);
                mp_pack_kv_u64(pk, "published", ports[i].published);
                mp_pack_kv_u64(pk, "target", ports[i].target);
                mp_pack_kv_str(pk, "protocol", port_protocol_to_string(ports[i].protocol));
                if (ports[i].host_ip[0])
                        mp_pack_kv_str(pk, "host_ip", ports[i].host_ip);
        }
}

static int get_port(const msgpack_object *o, const char *key, uint16_t *ret) {
        uint64_t v;

        if (mp_get_u64(o, key, &v) < 0 || v == 0 || v > 65535)
                return -EBADMSG;
        *ret = (uint16_t)v;
        return 0;
}

int ports_unpack(const msgpack_object *o, port_spec_t **ret, size_t *ret_n) {
        _cleanup_free_ port_spec_t *a = NULL;
        uint32_t n;

        if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > PORTS_MAX)
                return -EBADMSG;
        n = o->via.array.size;
        if (n > 0 && !(a = calloc(n, sizeof(*a))))
                return -ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
                const msgpack_object *e = &o->via.array.ptr[i];
                _cleanup_free_ char *proto = NULL, *host_ip = NULL;
                struct in_addr addr;
                int r;

                if (e->type != MSGPACK_OBJECT_MAP || get_port(e, "published", &a[i].published) < 0 ||
                    get_port(e, "target", &a[i].target) < 0)
                        return -EBADMSG;
                r = mp_get_str(e, "protocol", 8, &proto);
                if (r < 0 && r != -ENOENT)
                        return -EBADMSG;
                if (proto && port_protocol_from_string(proto, &a[i].protocol) < 0)
                        return -EBADMSG;
                r = mp_get_str(e, "host_ip", PORT_HOST_IP_MAX - 1, &host_ip);
                if (r < 0 && r != -ENOENT)
                        return -EBADMSG;
                if (host_ip) {
                        if (inet_pton(AF_INET, host_ip, &addr) != 1)
                                return -EBADMSG;
                        snprintf(a[i].host_ip, sizeof(a[i].host_ip), "%s", host_ip);
                }
        }
        *ret = TAKE_PTR(a);
        *ret_n = n;
        return 0;
}

int ports_get(const msgpack_object *map, port_spec_t **ret, size_t *ret_n) {
        const msgpack_object *o = mp_map_get(map, "ports");

        *ret = NULL;
        *ret_n = 0;
        if (!o || o->type == MSGPACK_OBJECT_NIL)
                return 0;
        return ports_unpack(o, ret, ret_n);
}

json_t *ports_to_json(const port_spec_t *ports, size_t n) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++) {
                json_t *e =
                        json_pack("{s:i,s:i,s:s}", "published", (json_int_t)ports[i].published, "target",
                                  (json_int_t)ports[i].target, "protocol", port_protocol_to_string(ports[i].protocol));

                if (e && ports[i].host_ip[0] && json_object_set_new(e, "host_ip", json_string(ports[i].host_ip)) < 0)
                        json_decref(TAKE_PTR(e));
                if (json_array_append_new(a, e) < 0)
                        json_decref(TAKE_PTR(a));
        }
        return a;
}

static int json_port(const json_t *e, const char *key, uint16_t *ret) {
        const json_t *v = json_object_get(e, key);

        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
                return -EBADMSG;
        *ret = (uint16_t)json_integer_value(v);
        return 0;
}

int ports_from_json(const json_t *j, port_spec_t **ret, size_t *ret_n) {
        _cleanup_free_ port_spec_t *a = NULL;
        const json_t *e;
        size_t n, i;

        *ret = NULL;
        *ret_n = 0;
        if (!j || json_is_null(j))
                return 0;
        if (!json_is_array(j) || json_array_size(j) > PORTS_MAX)
                return -EBADMSG;
        n = json_array_size(j);
        if (n > 0 && !(a = calloc(n, sizeof(*a))))
                return -ENOMEM;
        json_array_foreach(j, i, e) {
                const json_t *proto = json_object_get(e, "protocol"), *host_ip = json_object_get(e, "host_ip");
                struct in_addr addr;

                if (!json_is_object(e) || json_port(e, "published", &a[i].published) < 0 ||
                    json_port(e, "target", &a[i].target) < 0)
                        return -EBADMSG;
                if (proto && port_protocol_from_string(json_string_value(proto), &a[i].protocol) < 0)
                        return -EBADMSG;
                /* "" is "every local address", as the field's absence (netd's older state files). */
                if (host_ip && !json_is_null(host_ip)) {
                        if (!json_is_string(host_ip) || json_string_length(host_ip) >= PORT_HOST_IP_MAX ||
                            strlen(json_string_value(host_ip)) != json_string_length(host_ip))
                                return -EBADMSG;
                        if (json_string_length(host_ip) == 0)
                                continue;
                        if (inet_pton(AF_INET, json_string_value(host_ip), &addr) != 1)
                                return -EBADMSG;
                        snprintf(a[i].host_ip, sizeof(a[i].host_ip), "%s", json_string_value(host_ip));
                }
        }
        *ret = TAKE_PTR(a);
        *ret_n = n;
        return 0;
}

bool ports_equal(const port_spec_t *a, size_t na, const port_spec_t *b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (a[i].published != b[i].published || a[i].target != b[i].target || a[i].protocol != b[i].protocol ||
                    !streq(a[i].host_ip, b[i].host_ip))
                        return false;
        return true;
}
