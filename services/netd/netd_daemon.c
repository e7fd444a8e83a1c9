/* netd_daemon.c: netd's start (subnet, forwarder choice, sysctls, re-adoption, bus) and stop. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "services/netd/netd.h"

#define VMM_LIST_TIMEOUT_MS 2000

/* Instances removed while we were down: vmm-driver's net.detach found no netd and its
 * instance.removed went unheard. Whatever vmm-driver does not know any more goes. Without an
 * answer (vmm-driver down too) everything stays: a live VM's network is never guessed away.
 * Asked once at start, before netd serves or reports ready (no loop runs yet, so nothing waits
 * on this but the start itself): ready means the orphans are gone, and the answer describes the
 * moment of the restart, not a vmm-driver that came up seconds later. */
static void reap_orphans(netd_t *n) {
        bus_call_opts_t opts = { .timeout_ms = VMM_LIST_TIMEOUT_MS, .idempotent = true };
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        const char *ep = n->ctx->config->bus[HUSK_DAEMON_VMM_DRIVER].requests;
        bus_client_t *vmm = NULL;
        const msgpack_object *a;
        _cleanup_free_ char(*gone)[NETD_INSTANCE_ID_LEN + 1] = NULL;
        size_t n_gone = 0;
        int r;

        if (n->n_attachments == 0 || !ep || bus_client_new(ep, &vmm) < 0)
                return;
        r = bus_call(vmm, BUS_METHOD_INSTANCE_LIST, NULL, &opts, &reply);
        bus_client_destroy(&vmm);
        if (r < 0 || reply->error_code || !(a = reply->result) || a->type != MSGPACK_OBJECT_ARRAY) {
                log_info("vmm-driver did not list its instances: keeping every adopted network");
                return;
        }
        gone = calloc(n->n_attachments, sizeof(*gone));
        if (!gone)
                return;
        for (size_t k = 0; k < n->n_attachments; k++) {
                bool known = false;

                for (uint32_t i = 0; i < a->via.array.size && !known; i++) {
                        const msgpack_object *id = mp_map_get(&a->via.array.ptr[i], "instance_id");
                        known = id && mp_str_eq(id, n->attachments[k]->instance_id);
                }
                if (!known)
                        snprintf(gone[n_gone++], sizeof(*gone), "%s", n->attachments[k]->instance_id);
        }
        for (size_t k = 0; k < n_gone; k++) {
                log_info("Instance %s is gone from vmm-driver: removing its network", gone[k]);
                (void)netd_detach(n, gone[k]);
        }
}

int netd_open(netd_t *n) {
        const husk_config_t *c = n->ctx->config;
        const char *fw = c->netd.forwarder ?: "auto";
        char dir[4096];
        int r;

        r = netd_subnet_parse(c->netd.subnet ?: "10.42.0.0/16", &n->subnet);
        if (r < 0)
                return log_error_errno(r, "netd.subnet: %s is not an IPv4 network between /8 and /30",
                                       c->netd.subnet ?: "");
        snprintf(dir, sizeof(dir), "%s/netd", c->state_dir);
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", dir);
        if (asprintf(&n->state_path, "%s/state.json", dir) < 0)
                return log_error_errno(ENOMEM, "Out of memory");

        /* Routing to the guests (published ports from other interfaces, hairpins) needs it; this
         * is our network namespace's setting, like every sysctl under net. */
        r = netd_sysctl_write("/proc/sys/net/ipv4/ip_forward", "1");
        if (r < 0)
                log_warning_errno(r, "Failed to enable ip_forward, ignoring: %m");

        n->outbound_nat = c->netd.outbound_nat;
        n->mode = streq(fw, "proxy") ? NETD_MODE_PROXY : NETD_MODE_NFT;
        if (n->mode == NETD_MODE_NFT) {
                r = netd_sync_rules(n);
                if (r < 0 && streq(fw, "nft"))
                        return log_error_errno(r, "forwarder nft: cannot install table inet " NETD_TABLE ": %m");
                if (r < 0) {
                        log_warning("nftables unusable: falling back to the userspace forwarder, "
                                    "without isolation: guests reach the host and each other");
                        n->mode = NETD_MODE_PROXY;
                }
        }
        if (n->mode == NETD_MODE_PROXY) {
                r = netd_proxy_new(&n->proxy);
                if (r < 0)
                        return log_error_errno(r, "Failed to start the forwarder thread: %m");
        }
        r = netd_adopt(n);
        if (r < 0)
                return r;
        reap_orphans(n);
        /* Isolation rules are wanted in proxy mode too, when nft works at all. */
        r = netd_sync_rules(n);
        if (r < 0 && n->mode == NETD_MODE_NFT)
                return log_error_errno(r, "Failed to install the nft rules: %m");
        log_info("Subnet %s, forwarder %s, outbound NAT %s, %zu instance(s) adopted", c->netd.subnet ?: "10.42.0.0/16",
                 n->mode == NETD_MODE_NFT ? "nft" : "proxy", c->netd.outbound_nat ? "on" : "off", n->n_attachments);
        return netd_bus_open(n);
}

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && streq(a, b)); }

/* Runs on the loop before the old config is freed; nothing of netd keeps a pointer into either. */
int netd_reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh) {
        netd_t *n = ctx->userdata;
        const husk_config_t *old = ctx->config;
        int r;

        if (!n)
                return 0;
        /* Every /30 handed out and every rule is carved from the subnet; the forwarder holds
         * the published ports; the state file lives under state_dir. */
        if (!same(old->netd.subnet, fresh->netd.subnet))
                return log_error_errno(EINVAL, "netd.subnet cannot change while running; restart husk-netd");
        if (!same(old->netd.forwarder, fresh->netd.forwarder))
                return log_error_errno(EINVAL, "netd.forwarder cannot change while running; restart husk-netd");
        if (!same(old->state_dir, fresh->state_dir))
                return log_error_errno(EINVAL, "state_dir cannot change while running; restart husk-netd");
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++)
                if (!same(old->bus[d].events, fresh->bus[d].events) ||
                    !same(old->bus[d].requests, fresh->bus[d].requests)) {
                        log_notice("bus endpoints changed: husk-netd uses them from its next restart");
                        break;
                }
        if (fresh->netd.outbound_nat != n->outbound_nat) {
                n->outbound_nat = fresh->netd.outbound_nat;
                r = netd_sync_rules(n);
                if (r < 0 && n->mode == NETD_MODE_NFT) {
                        n->outbound_nat = !n->outbound_nat;
                        (void)netd_sync_rules(n);
                        return log_error_errno(r, "Failed to apply netd.outbound_nat: %m");
                }
                log_info("Outbound NAT %s", n->outbound_nat ? "on" : "off");
        }
        return 0;
}

void netd_close(netd_t *n) {
        netd_bus_close(n);
        /* TAPs and rules stay: the VMs keep their network while netd is away. */
        netd_proxy_free(n->proxy);
        n->proxy = NULL;
        for (size_t k = 0; k < n->n_attachments; k++) {
                netd_attachment_t *a = n->attachments[k];
                /* The proxy is gone: only the reservations are left to close. */
                netd_attachment_free(a);
        }
        free(n->attachments);
        n->attachments = NULL;
        n->n_attachments = 0;
        free(n->state_path);
        n->state_path = NULL;
        netd_nft_free(&n->nft);
}
