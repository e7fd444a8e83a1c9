/* netd_net.c: attachments (TAP + /30 + published ports) of instances: attach, detach, re-adopt, apply rules. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/netd/netd.h"

static void release_ports(netd_t *n, netd_attachment_t *a) {
        if (n && n->proxy && a->reservations)
                (void)netd_proxy_remove(n->proxy, a->instance_id);
        for (size_t k = 0; a->reservations && k < a->n_ports; k++)
                if (a->reservations[k] >= 0)
                        close(a->reservations[k]);
        free(a->reservations);
        a->reservations = NULL;
}

void netd_attachment_free(netd_attachment_t *a) {
        if (!a)
                return;
        release_ports(NULL, a);
        free(a->ports);
        free(a);
}

netd_attachment_t *netd_find(netd_t *n, const char *instance_id) {
        for (size_t k = 0; k < n->n_attachments; k++)
                if (streq(n->attachments[k]->instance_id, instance_id))
                        return n->attachments[k];
        return NULL;
}

/* Take every host port of a (bind; listen too in proxy mode) and start forwarding in proxy
 * mode. strict: fail on the first port taken (attach); else log and go on (adoption). */
static int reserve_ports(netd_t *n, netd_attachment_t *a, bool strict, char *ret_error, size_t error_size) {
        a->reservations = malloc((a->n_ports + 1) * sizeof(int));
        if (!a->reservations)
                return -ENOMEM;
        for (size_t k = 0; k < a->n_ports; k++)
                a->reservations[k] = -1;
        for (size_t k = 0; k < a->n_ports; k++) {
                const port_spec_t *p = &a->ports[k];
                int fd = netd_port_reserve(p, n->mode == NETD_MODE_PROXY);

                if (fd < 0) {
                        snprintf(ret_error, error_size, "PortAllocationFailed: ports[%zu].published: %s%s%u/%s: %s", k,
                                 p->host_ip, p->host_ip[0] ? ":" : "", p->published,
                                 port_protocol_to_string(p->protocol),
                                 fd == -EADDRINUSE ? "already in use on the host" : strerror(-fd));
                        if (strict) {
                                release_ports(n, a);
                                return fd == -EADDRINUSE ? fd : -EADDRINUSE;
                        }
                        log_warning("Instance %s: %s, not forwarding it", a->instance_id, ret_error);
                        continue;
                }
                a->reservations[k] = fd;
                if (n->mode == NETD_MODE_PROXY) {
                        int r = netd_proxy_add(n->proxy, a->instance_id, fd, p->protocol, a->network + 2, p->target);
                        if (r < 0)
                                log_warning_errno(r, "Instance %s: cannot forward port %u, ignoring: %m",
                                                  a->instance_id, p->published);
                }
        }
        return 0;
}

/* route_localnet where nft DNAT of a port on 127.0.0.1 needs it (netd_ports_need_localnet),
 * set before the rule that needs it. Only in nft mode, where the guard chain is in the same
 * table (the proxy connects from the TAP's address and needs none). Once on it stays on for
 * the TAP's life (and an adopted TAP keeps what it has): connections to a port a replacement
 * took over still run to this instance, and their answers need it. */
static void sync_localnet(netd_t *n) {
        for (size_t k = 0; k < n->n_attachments; k++) {
                netd_attachment_t *a = n->attachments[k];
                bool on = n->mode == NETD_MODE_NFT && netd_ports_need_localnet(a->ports, a->n_ports);
                int r;

                if (on ? a->localnet == 1 : (n->mode == NETD_MODE_NFT || a->localnet == 0))
                        continue;
                r = netd_tap_set_localnet(a->tap, on);
                if (r < 0)
                        log_warning_errno(r, "Failed to set route_localnet on %s, ignoring: %m", a->tap);
                else
                        a->localnet = on;
        }
}

int netd_sync_rules(netd_t *n) {
        char subnet[32], base[16];
        netd_ruleset_opts_t o = { .subnet = subnet, .outbound_nat = n->outbound_nat, .dnat = n->mode == NETD_MODE_NFT };
        _cleanup_free_ char *script = NULL, *error = NULL;
        int r;

        netd_ip4_str(n->subnet.base, base);
        snprintf(subnet, sizeof(subnet), "%s/%u", base, n->subnet.prefix);
        sync_localnet(n);
        r = netd_nft_render(&o, n->attachments, n->n_attachments, &script);
        if (r < 0)
                return r;
        r = netd_nft_run(&n->nft, script, &error);
        if (r < 0)
                return log_warning_errno(r, "nft: %s", error ?: "failed");
        return 0;
}

static bool slot_taken(uint32_t slot, void *userdata) {
        netd_t *n = userdata;

        for (size_t k = 0; k < n->n_attachments; k++)
                if (n->attachments[k]->slot == slot)
                        return true;
        return false;
}

static int add_attachment(netd_t *n, netd_attachment_t *a) {
        netd_attachment_t **v;

        if (n->n_attachments >= NETD_ATTACH_MAX)
                return -ENOSPC;
        v = realloc(n->attachments, (n->n_attachments + 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        n->attachments = v;
        n->attachments[n->n_attachments++] = a;
        return 0;
}

static void drop_attachment(netd_t *n, netd_attachment_t *a) {
        for (size_t k = 0; k < n->n_attachments; k++)
                if (n->attachments[k] == a) {
                        n->attachments[k] = n->attachments[--n->n_attachments];
                        return;
                }
}

static int new_attachment(netd_t *n, const char *id, const char *deployment_id, uint32_t slot, const port_spec_t *ports,
                          size_t n_ports, netd_attachment_t **ret) {
        netd_attachment_t *a = calloc(1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        snprintf(a->instance_id, sizeof(a->instance_id), "%s", id);
        snprintf(a->deployment_id, sizeof(a->deployment_id), "%s", deployment_id ?: "");
        snprintf(a->tap, sizeof(a->tap), NETD_TAP_PREFIX "%s", id);
        netd_mac(netd_fnv1a64(id), a->mac);
        a->slot = slot;
        a->network = netd_slot_network(&n->subnet, slot);
        a->localnet = -1;
        if (n_ports) {
                a->ports = malloc(n_ports * sizeof(*ports));
                if (!a->ports) {
                        free(a);
                        return -ENOMEM;
                }
                memcpy(a->ports, ports, n_ports * sizeof(*ports));
                a->n_ports = n_ports;
        }
        *ret = a;
        return 0;
}

static bool same_host_port(const port_spec_t *a, const port_spec_t *b) {
        bool any_a = !a->host_ip[0] || streq(a->host_ip, "0.0.0.0"),
             any_b = !b->host_ip[0] || streq(b->host_ip, "0.0.0.0");

        return a->published == b->published && a->protocol == b->protocol &&
               (any_a || any_b || streq(a->host_ip, b->host_ip));
}

/* A replacement instance (a new generation, started while the old one still serves) takes the
 * deployment's published ports over: a host port forwards to one VM, the newest. Only between
 * instances of one deployment; anyone else's port stays a PortAllocationFailed. */
static void take_over_ports(netd_t *n, const char *deployment_id, const port_spec_t *ports, size_t n_ports) {
        if (!deployment_id || !*deployment_id)
                return;
        for (size_t k = 0; k < n->n_attachments; k++) {
                netd_attachment_t *o = n->attachments[k];
                size_t kept = 0;
                bool moved = false;

                if (!streq(o->deployment_id, deployment_id))
                        continue;
                for (size_t i = 0; i < o->n_ports; i++) {
                        bool wanted = false;

                        for (size_t j = 0; j < n_ports && !wanted; j++)
                                wanted = same_host_port(&o->ports[i], &ports[j]);
                        if (!wanted) {
                                o->ports[kept] = o->ports[i];
                                if (o->reservations)
                                        o->reservations[kept] = o->reservations[i];
                                kept++;
                                continue;
                        }
                        if (!moved && n->proxy)
                                (void)netd_proxy_remove(n->proxy, o->instance_id);
                        moved = true;
                        if (o->reservations && o->reservations[i] >= 0)
                                close(o->reservations[i]);
                        log_info("Instance %s: published port %u/%s goes to its replacement", o->instance_id,
                                 o->ports[i].published, port_protocol_to_string(o->ports[i].protocol));
                }
                o->n_ports = kept;
                /* The proxy forgot all of o's listeners: give it back those o keeps. */
                for (size_t i = 0; moved && n->proxy && o->reservations && i < kept; i++)
                        if (o->reservations[i] >= 0)
                                (void)netd_proxy_add(n->proxy, o->instance_id, o->reservations[i], o->ports[i].protocol,
                                                     o->network + 2, o->ports[i].target);
        }
}

int netd_attach(netd_t *n, const char *instance_id, const char *deployment_id, const port_spec_t *ports, size_t n_ports,
                const char *take_tap, netd_attachment_t **ret, char *ret_error, size_t error_size) {
        netd_attachment_t *a;
        uint32_t slot;
        int r;

        if (!instance_id_valid(instance_id)) {
                snprintf(ret_error, error_size, "instance_id: must be %d lowercase hex digits", NETD_INSTANCE_ID_LEN);
                return -EINVAL;
        }
        r = netd_ports_check(ports, n_ports, ret_error, error_size);
        if (r < 0)
                return r;
        if (take_tap && !netd_pool_tap_name_valid(take_tap)) {
                snprintf(ret_error, error_size, "tap: must be %s followed by %d lowercase hex digits",
                         NETD_POOL_TAP_PREFIX, NETD_INSTANCE_ID_LEN);
                return -EINVAL;
        }
        a = netd_find(n, instance_id);
        if (a && ports_equal(a->ports, a->n_ports, ports, n_ports)) {
                /* A retried attach (vmm-driver timed out on the first answer): same result. */
                *ret = a;
                return 0;
        }
        if (a) {
                /* Same instance, other ports: not something vmm-driver does; refuse rather than guess. */
                snprintf(ret_error, error_size, "instance_id: %s is attached with other ports", instance_id);
                return -EEXIST;
        }
        /* After the retry above: the first attach already renamed the pool TAP away. */
        if (take_tap) {
                r = netd_pool_tap_check(NETD_SYSFS_NET, take_tap, ret_error, error_size);
                if (r < 0)
                        return r;
        }

        r = netd_pick_slot(&n->subnet, netd_fnv1a64(instance_id), slot_taken, n, &slot);
        if (r < 0) {
                char base[16];

                netd_ip4_str(n->subnet.base, base);
                snprintf(ret_error, error_size, "no free /30 left in %s/%u", base, n->subnet.prefix);
                return r;
        }
        if (slot != netd_preferred_slot(&n->subnet, netd_fnv1a64(instance_id)))
                log_info("Instance %s: its /30 is taken by a live instance, using the next free one", instance_id);
        r = new_attachment(n, instance_id, deployment_id, slot, ports, n_ports, &a);
        if (r < 0)
                return r;
        take_over_ports(n, deployment_id, ports, n_ports);
        /* Ports first: on a conflict the VM must not start, and nothing was created yet. */
        r = reserve_ports(n, a, true, ret_error, error_size);
        if (r < 0) {
                netd_attachment_free(a);
                return r;
        }
        r = take_tap ? netd_tap_take(take_tap, a->tap, a->network + 1) : netd_tap_create(a->tap, a->network + 1);
        if (r >= 0)
                a->localnet = 0;
        if (r < 0) {
                if (take_tap)
                        snprintf(ret_error, error_size, "cannot take TAP %s over as %s: %s", take_tap, a->tap,
                                 strerror(-r));
                else
                        snprintf(ret_error, error_size, "cannot create TAP %s: %s", a->tap, strerror(-r));
                /* A pool TAP renamed but not configured goes too: vmm-driver discards its clone. */
                release_ports(n, a);
                (void)netd_tap_delete(a->tap);
                netd_attachment_free(a);
                return r;
        }
        r = add_attachment(n, a);
        if (r < 0) {
                snprintf(ret_error, error_size, "too many instances on this host");
                release_ports(n, a);
                (void)netd_tap_delete(a->tap);
                netd_attachment_free(a);
                return r;
        }
        r = netd_sync_rules(n);
        if (r < 0 && n->mode == NETD_MODE_NFT) {
                snprintf(ret_error, error_size, "cannot install the nft rules of %s", instance_id);
                drop_attachment(n, a);
                release_ports(n, a);
                (void)netd_tap_delete(a->tap);
                netd_attachment_free(a);
                (void)netd_sync_rules(n);
                return r;
        }
        (void)netd_state_save(n);
        if (take_tap)
                log_info("Instance %s: pool TAP %s taken over as %s", instance_id, take_tap, a->tap);
        *ret = a;
        return 0;
}

int netd_detach(netd_t *n, const char *instance_id) {
        netd_attachment_t *a = netd_find(n, instance_id);
        char tap[16];
        int r;

        if (!instance_id_valid(instance_id))
                return -EINVAL;
        snprintf(tap, sizeof(tap), NETD_TAP_PREFIX "%s", instance_id);
        if (a) {
                drop_attachment(n, a);
                release_ports(n, a);
                (void)netd_sync_rules(n);
                (void)netd_state_save(n);
        }
        r = netd_tap_delete(tap);
        if (r < 0)
                log_warning_errno(r, "Failed to delete TAP %s: %m", tap);
        if (a) {
                netd_publish(n, BUS_EVENT_NET_DETACHED, a, NULL);
                log_info("Instance %s: TAP %s and its rules removed", instance_id, tap);
                netd_attachment_free(a);
        }
        return r < 0 ? r : 0;
}

typedef struct adopt_ctx {
        netd_t *n;
        char **taps;
} adopt_ctx_t;

static void adopt_entry(const char *id, const char *deployment_id, port_spec_t *ports, size_t n_ports, void *ud) {
        adopt_ctx_t *c = ud;
        netd_attachment_t *a = netd_find(c->n, id);
        char error[256];

        if (!a) {
                log_info("Instance %s: in the state file but its TAP is gone, forgetting it", id);
                return;
        }
        snprintf(a->deployment_id, sizeof(a->deployment_id), "%s", deployment_id);
        free(a->ports);
        a->ports = NULL;
        a->n_ports = 0;
        if (n_ports) {
                a->ports = malloc(n_ports * sizeof(*ports));
                if (!a->ports)
                        return;
                memcpy(a->ports, ports, n_ports * sizeof(*ports));
                a->n_ports = n_ports;
        }
        if (reserve_ports(c->n, a, false, error, sizeof(error)) < 0)
                log_warning("Instance %s: cannot hold its ports again, ignoring", id);
}

int netd_adopt(netd_t *n) {
        _cleanup_free_ char **taps = NULL;
        adopt_ctx_t c = { .n = n };
        int r, count;

        count = netd_tap_list(&taps);
        if (count < 0)
                return log_error_errno(count, "Failed to list network devices: %m");
        for (char **t = taps; *t; t++) {
                const char *id = *t + strlen(NETD_TAP_PREFIX);
                netd_attachment_t *a;
                uint32_t addr, slot;

                r = netd_tap_address(*t, &addr);
                if (r < 0 || netd_slot_of(&n->subnet, addr - 1, &slot) < 0 || slot_taken(slot, n) ||
                    !instance_id_valid(id)) {
                        /* Ours by name, but not a network we can serve (subnet changed?): remove it. */
                        log_warning("TAP %s has no usable address in the subnet, deleting it", *t);
                        (void)netd_tap_delete(*t);
                } else if (new_attachment(n, id, NULL, slot, NULL, 0, &a) >= 0 && add_attachment(n, a) >= 0)
                        log_info("Instance %s: adopted TAP %s", id, *t);
                free(*t);
        }
        c.taps = NULL;
        r = netd_state_load(n->state_path, adopt_entry, &c);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Failed to read %s, ports not re-adopted: %m", n->state_path);
        /* Adopted TAPs the state file did not mention have no ports but still need them held. */
        for (size_t k = 0; k < n->n_attachments; k++)
                if (!n->attachments[k]->reservations)
                        (void)reserve_ports(n, n->attachments[k], false, (char[256]){}, 256);
        (void)netd_state_save(n);
        return 0;
}
