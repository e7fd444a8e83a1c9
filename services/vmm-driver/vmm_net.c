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

static int net_fail(char **ret_error, int error, const char *fmt, ...) _printf_(3, 4);
static int net_fail(char **ret_error, int error, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}

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
        return 0;
}

int vmm_net_attach(vmm_t *d, const instance_spec_t *s, vmm_net_t *ret, char **ret_error) {
        bus_call_opts_t opts = { .timeout_ms = NET_ATTACH_TIMEOUT_MS, .idempotent = true };
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        msgpack_sbuffer buf;
        _cleanup_(attachment_clear) attachment_t a = {};
        proto_error_t e = {};
        msgpack_packer pk;
        int r;

        memset(ret, 0, sizeof(*ret));
        if (!d->netd || !netd_present(d)) {
                if (s->n_ports > 0)
                        return net_fail(ret_error, -EAGAIN, "ports: no netd runs on this host to publish them");
                log_debug("Instance %s: no netd on this host, no network", s->instance_id);
                return 0;
        }
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        mp_pack_kv_str(&pk, "instance_id", s->instance_id);
        mp_pack_kv_str(&pk, "deployment_id", s->deployment_id);
        mp_pack_str(&pk, "ports");
        ports_pack(&pk, s->ports, s->n_ports);
        r = bus_call(d->netd, "net.attach", &buf, &opts, &reply);
        msgpack_sbuffer_destroy(&buf);
        if (r < 0)
                return net_fail(ret_error, -EAGAIN, "netd did not answer net.attach: %s", strerror(-r));
        if (reply->error_code) {
                /* PortAllocationFailed keeps its own code: the scheduler counts it as a failed start. */
                r = streq(reply->error_code, BUS_ERR_PORT_ALLOCATION_FAILED) ? -EADDRINUSE
                    : streq(reply->error_code, BUS_ERR_INVALID)       ? -EINVAL
                                                                      : -EAGAIN;
                return net_fail(ret_error, r, "%s", reply->error_message ?: reply->error_code);
        }
        r = attachment_unpack(reply->result, &a, &e);
        if (r < 0) {
                vmm_net_detach(d, s->instance_id);
                return net_fail(ret_error, -EBADMSG, "netd answered net.attach with a malformed result: %s", e.message);
        }
        snprintf(ret->tap, sizeof(ret->tap), "%s", a.tap);
        snprintf(ret->mac, sizeof(ret->mac), "%s", a.mac);
        snprintf(ret->host_ip, sizeof(ret->host_ip), "%s", a.host_ip);
        snprintf(ret->guest_ip, sizeof(ret->guest_ip), "%s", a.guest_ip);
        ret->prefix = a.prefix;
        ret->attached = true;
        return 0;
}

void vmm_net_detach(vmm_t *d, const char *instance_id) {
        bus_call_opts_t opts = { .timeout_ms = NET_DETACH_TIMEOUT_MS, .idempotent = true };
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int r;

        if (!d->netd || !netd_present(d))
                return;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "instance_id", instance_id);
        r = bus_call(d->netd, "net.detach", &buf, &opts, &reply);
        msgpack_sbuffer_destroy(&buf);
        /* netd also detaches on our instance.removed event: a miss here is not fatal. */
        if (r < 0)
                log_warning_errno(r, "Instance %s: net.detach: no answer from netd, ignoring: %m", instance_id);
        else if (reply->error_code)
                log_warning("Instance %s: net.detach: %s: %s, ignoring", instance_id, reply->error_code,
                            reply->error_message ?: "");
}
