/* vmm_net.c: an instance's network, asked from netd (net.attach) before its VMM starts and given back (net.detach) when it goes. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/attachment.h"
#include "services/vmm-driver/vmm.h"

#define NET_ATTACH_TIMEOUT_MS 5000
#define NET_DETACH_TIMEOUT_MS 2000

/* Is a netd serving this host? For ipc:// endpoints the socket file says so without a round
 * trip; a stand-alone vmm-driver (tests, hosts without netd) then runs VMs without a network. */
static bool netd_present(const vmm_t *d) {
        const char *ep = vmm_config(d)->bus[HUSK_DAEMON_NETD].requests;
        struct stat st;

        if (!ep)
                return false;
        if (strncmp(ep, "ipc://", 6) != 0)
                return true;
        return stat(ep + 6, &st) == 0 && S_ISSOCK(st.st_mode);
}

int vmm_net_open(vmm_t *d) {
        const char *ep = vmm_config(d)->bus[HUSK_DAEMON_NETD].requests;
        int r;

        if (!ep)
                return 0;
        r = bus_client_new(ep, &d->netd);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to netd at %s: %m", ep);
        /* Never a blocking call from the loop: while netd is slow, exits and requests go on. */
        r = bus_client_attach(d->netd, d->loop);
        if (r < 0)
                return log_error_errno(r, "Failed to serve netd's replies from the loop: %m");
        return 0;
}

typedef struct attach_call {
        vmm_t *d;
        char instance_id[INSTANCE_ID_LEN + 1];
        vmm_net_attach_fn fn;
        void *userdata;
} attach_call_t;

static void on_attach_reply(int error, const bus_reply_t *reply, void *userdata) {
        _cleanup_free_ attach_call_t *c = userdata;
        _cleanup_free_ char *why = NULL;
        _cleanup_(attachment_clear) attachment_t a = {};
        proto_error_t e = {};
        vmm_net_t net = {};
        int r;

        if (error < 0) {
                r = error_set(&why, -EAGAIN, "netd did not answer net.attach: %s", strerror(-error));
        } else if (reply->error_code) {
                /* PortAllocationFailed keeps its own code: the scheduler counts it as a failed start. */
                r = streq(reply->error_code, BUS_ERR_PORT_ALLOCATION_FAILED) ? -EADDRINUSE
                    : streq(reply->error_code, BUS_ERR_INVALID)              ? -EINVAL
                                                                             : -EAGAIN;
                r = error_set(&why, r, "%s", reply->error_message ?: reply->error_code);
        } else if (attachment_unpack(reply->result, &a, &e) < 0) {
                vmm_net_detach(c->d, c->instance_id);
                r = error_set(&why, -EBADMSG, "netd answered net.attach with a malformed result: %s", e.message);
        } else {
                snprintf(net.tap, sizeof(net.tap), "%s", a.tap);
                snprintf(net.mac, sizeof(net.mac), "%s", a.mac);
                snprintf(net.host_ip, sizeof(net.host_ip), "%s", a.host_ip);
                snprintf(net.guest_ip, sizeof(net.guest_ip), "%s", a.guest_ip);
                net.prefix = a.prefix;
                net.attached = true;
                r = 0;
        }
        c->fn(r, r < 0 ? NULL : &net, why, c->userdata);
}

int vmm_net_attach(vmm_t *d, const instance_spec_t *s, const char *take_tap, vmm_net_attach_fn fn, void *userdata,
                   uint64_t *ret_id, char **ret_error) {
        bus_call_opts_t opts = { .timeout_ms = NET_ATTACH_TIMEOUT_MS, .idempotent = true };
        attach_call_t *c;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int r;

        if (!d->netd || !netd_present(d)) {
                if (s->n_ports > 0)
                        return error_set(ret_error, -EAGAIN, "ports: no netd runs on this host to publish them");
                log_debug("Instance %s: no netd on this host, no network", s->instance_id);
                return 1;
        }
        c = calloc(1, sizeof(*c));
        if (!c)
                return error_set(ret_error, -ENOMEM, "out of memory");
        *c = (attach_call_t){ .d = d, .fn = fn, .userdata = userdata };
        snprintf(c->instance_id, sizeof(c->instance_id), "%s", s->instance_id);
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, take_tap ? 4 : 3);
        mp_pack_kv_str(&pk, "instance_id", s->instance_id);
        mp_pack_kv_str(&pk, "deployment_id", s->deployment_id);
        mp_pack_str(&pk, "ports");
        ports_pack(&pk, s->ports, s->n_ports);
        if (take_tap)
                mp_pack_kv_str(&pk, "tap", take_tap);
        r = bus_call_async(d->netd, BUS_METHOD_NET_ATTACH, &buf, &opts, on_attach_reply, c, ret_id);
        msgpack_sbuffer_destroy(&buf);
        if (r < 0) {
                free(c);
                return error_set(ret_error, -EAGAIN, "cannot ask netd for net.attach: %s", strerror(-r));
        }
        return 0;
}

static void on_detach_reply(int error, const bus_reply_t *reply, void *userdata) {
        _cleanup_free_ char *instance_id = userdata;

        /* netd also detaches on our instance.removed event: a miss here is not fatal. */
        if (error < 0)
                log_warning_errno(error, "Instance %s: net.detach: no answer from netd, ignoring: %m", instance_id);
        else if (reply->error_code)
                log_warning("Instance %s: net.detach: %s: %s, ignoring", instance_id, reply->error_code,
                            reply->error_message ?: "");
}

void vmm_net_detach(vmm_t *d, const char *instance_id) {
        bus_call_opts_t opts = { .timeout_ms = NET_DETACH_TIMEOUT_MS, .idempotent = true };
        msgpack_sbuffer buf;
        msgpack_packer pk;
        char *id;
        int r;

        if (!d->netd || !netd_present(d))
                return;
        id = strdup(instance_id);
        if (!id)
                return;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "instance_id", instance_id);
        r = bus_call_async(d->netd, BUS_METHOD_NET_DETACH, &buf, &opts, on_detach_reply, id, NULL);
        msgpack_sbuffer_destroy(&buf);
        if (r < 0) {
                log_warning_errno(r, "Instance %s: cannot send net.detach, ignoring: %m", instance_id);
                free(id);
        }
}
