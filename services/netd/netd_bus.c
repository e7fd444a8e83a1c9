/* netd_bus.c: netd's requests (net.attach/detach/list), its net.* events, and instance.removed from vmm-driver. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/attachment.h"
#include "services/netd/netd.h"

static void pack_attachment(msgpack_packer *pk, const netd_attachment_t *a, size_t extra) {
        attachment_t w = { .prefix = 30, .ports = a->ports, .n_ports = a->n_ports };

        snprintf(w.instance_id, sizeof(w.instance_id), "%s", a->instance_id);
        snprintf(w.tap, sizeof(w.tap), "%s", a->tap);
        snprintf(w.mac, sizeof(w.mac), "%s", a->mac);
        netd_ip4_str(a->network + 1, w.host_ip);
        netd_ip4_str(a->network + 2, w.guest_ip);
        attachment_pack(pk, &w, extra);
}

void netd_publish(netd_t *n, const char *type, const netd_attachment_t *a, const char *message) {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int r;

        if (!n->pub)
                return;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        pack_attachment(&pk, a, 1);
        mp_pack_kv_u64(&pk, "ts", now_realtime_ms());
        (void)message;
        r = bus_pub_send(n->pub, type, buf.data, buf.size);
        if (r < 0)
                log_warning_errno(r, "Failed to publish %s, ignoring: %m", type);
        msgpack_sbuffer_destroy(&buf);
}

static void publish_port_failure(netd_t *n, const char *instance_id, const char *deployment_id, const char *message) {
        msgpack_sbuffer buf;
        msgpack_packer pk;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, deployment_id ? 5 : 4);
        mp_pack_kv_u64(&pk, "ts", now_realtime_ms());
        mp_pack_kv_str(&pk, "instance_id", instance_id);
        if (deployment_id)
                mp_pack_kv_str(&pk, "deployment_id", deployment_id);
        mp_pack_kv_str(&pk, "reason", EVENT_PORT_ALLOCATION_FAILED);
        mp_pack_kv_str(&pk, "message", message);
        (void)bus_pub_send(n->pub, BUS_EVENT_NET_PORT_ALLOCATION_FAILED, buf.data, buf.size);
        msgpack_sbuffer_destroy(&buf);
}

static int arg_id(bus_request_t *req, char **ret) {
        int r = mp_get_str(req->args, "instance_id", PROTO_ID_MAX, ret);

        if (r < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "instance_id: required string is missing or too long");
        return 0;
}

static int method_attach(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        netd_t *n = userdata;
        _cleanup_free_ char *id = NULL, *deployment_id = NULL, *tap = NULL;
        _cleanup_free_ port_spec_t *ports = NULL;
        netd_attachment_t *a;
        size_t n_ports;
        char error[512];
        bool existed;
        int r;

        if ((r = arg_id(req, &id)) < 0)
                return r;
        if (mp_get_str(req->args, "deployment_id", PROTO_ID_MAX, &deployment_id) == -EBADMSG)
                return bus_request_fail(req, BUS_ERR_INVALID, "deployment_id: must be a string");
        if (ports_get(req->args, &ports, &n_ports) < 0)
                return bus_request_fail(req, BUS_ERR_INVALID,
                                        "ports: must be an array of at most %d {published, target, protocol tcp|udp, "
                                        "host_ip?} with ports 1-65535",
                                        PORTS_MAX);
        r = mp_get_str(req->args, "tap", IFNAMSIZ - 1, &tap);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "tap: must be a string of at most %d bytes",
                                        IFNAMSIZ - 1);
        existed = netd_find(n, id) != NULL;
        r = netd_attach(n, id, deployment_id, ports, n_ports, tap, &a, error, sizeof(error));
        if (r == -EADDRINUSE) {
                log_warning("Instance %s: %s", id, error);
                publish_port_failure(n, id, deployment_id, error);
                return bus_request_fail(req, BUS_ERR_PORT_ALLOCATION_FAILED, "%s", error);
        }
        if (r == -EINVAL)
                return bus_request_fail(req, BUS_ERR_INVALID, "%s", error);
        if (r == -EEXIST)
                return bus_request_fail(req, BUS_ERR_CONFLICT, "%s", error);
        if (r < 0) {
                log_error_errno(r, "Instance %s: attach failed: %s", id, error);
                return bus_request_fail(req, BUS_ERR_INTERNAL, "%s", error);
        }
        if (!existed) {
                log_info("Instance %s: TAP %s, %s, %zu published port(s)", id, a->tap, a->mac, a->n_ports);
                netd_publish(n, BUS_EVENT_NET_ATTACHED, a, NULL);
        }
        pack_attachment(pk, a, 0);
        return 0;
}

static int method_detach(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        netd_t *n = userdata;
        _cleanup_free_ char *id = NULL;
        int r;

        if ((r = arg_id(req, &id)) < 0)
                return r;
        r = netd_detach(n, id);
        if (r == -EINVAL)
                return bus_request_fail(req, BUS_ERR_INVALID, "instance_id: must be 12 lowercase hex digits");
        if (r < 0)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "detach %s: %s", id, strerror(-r));
        msgpack_pack_map(pk, 0);
        return 0;
}

static int method_list(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        netd_t *n = userdata;

        msgpack_pack_array(pk, n->n_attachments);
        for (size_t k = 0; k < n->n_attachments; k++)
                pack_attachment(pk, n->attachments[k], 0);
        return 0;
}

static const bus_method_t netd_methods[] = {
        { BUS_METHOD_NET_ATTACH, method_attach },
        { BUS_METHOD_NET_DETACH, method_detach },
        { BUS_METHOD_NET_LIST, method_list },
        { BUS_METHOD_NET_STATS, netd_method_stats },
        {},
};

/* vmm-driver detaches when it removes an instance; this covers the case where it could not
 * reach us at that moment. */
static void on_event(const char *type, const msgpack_object *body, void *userdata) {
        netd_t *n = userdata;
        _cleanup_free_ char *id = NULL;

        if (!streq(type, BUS_EVENT_INSTANCE_REMOVED) || mp_get_str(body, "instance_id", PROTO_ID_MAX, &id) < 0)
                return;
        if (netd_find(n, id))
                (void)netd_detach(n, id);
}

int netd_bus_open(netd_t *n) {
        const husk_config_t *c = n->ctx->config;
        const husk_endpoints_t *ep = &c->bus[HUSK_DAEMON_NETD];
        const char *publishers[] = { c->bus[HUSK_DAEMON_VMM_DRIVER].events };
        int r;

        if (!ep->events || !ep->requests)
                return log_error_errno(EINVAL, "bus.netd: events and requests endpoints must be set");
        r = bus_pub_new(ep->events, &n->pub);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", ep->events);
        r = bus_server_new(ep->requests, netd_methods, n, &n->server);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", ep->requests);
        r = bus_server_attach(n->server, n->ctx->loop);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the request socket: %m");
        r = bus_sub_new(publishers, ELEMENTSOF(publishers), &n->events);
        if (r >= 0)
                r = bus_sub_subscribe(n->events, BUS_EVENT_INSTANCE_REMOVED);
        if (r >= 0)
                r = bus_sub_attach(n->events, n->ctx->loop, on_event, n);
        if (r < 0)
                return log_error_errno(r, "Failed to subscribe to vmm-driver events: %m");
        return 0;
}

void netd_bus_close(netd_t *n) {
        bus_sub_destroy(&n->events);
        bus_server_destroy(&n->server);
        bus_pub_destroy(&n->pub);
}
