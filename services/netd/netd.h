/* netd.h: husk-netd, the per-host network daemon: one TAP and /30 per instance, published
 * ports (nftables DNAT or a userspace forwarder), sibling isolation, optional outbound NAT.
 *
 * netd owns nothing durable but a small state file (the ports of each attachment): TAPs are
 * found again by name (hk<instance_id>), their /30 from the address on them, and the nft table
 * `inet husk` is rendered whole from that state and replaced atomically on every change, so a
 * netd restart re-adopts everything and the kernel keeps forwarding while netd is down. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/bus.h"
#include "lib/daemon.h"
#include "proto/instance.h"
#include "proto/port.h"

#define NETD_TAP_PREFIX "hk"
/* A TAP QEMU made itself for a warm-pool clone (hkp + 12 lowercase hex digits): net.attach's
 * `tap` names one for netd to take over as the instance's hk<instance_id>. */
#define NETD_POOL_TAP_PREFIX "hkp"
#define NETD_SYSFS_NET "/sys/class/net"
#define NETD_TABLE "husk" /* nft table, family inet */
#define NETD_INSTANCE_ID_LEN INSTANCE_ID_LEN
#define NETD_ATTACH_MAX 4096 /* instances per host: bounds the state file and the ruleset */

/* ---- addresses (netd_addr.c): pure, unit-tested ------------------------------------------------- */

typedef struct netd_subnet {
        uint32_t base;   /* host byte order, aligned to prefix */
        unsigned prefix; /* 8..30 */
} netd_subnet_t;

/* "10.42.0.0/16" -> subnet. -EINVAL when malformed, unaligned or not between /8 and /30. */
int netd_subnet_parse(const char *s, netd_subnet_t *ret);
/* Number of /30s the subnet holds. */
uint32_t netd_subnet_slots(const netd_subnet_t *s);

/* FNV-1a 64 of the instance id: the seed of its /30 and MAC. */
uint64_t netd_fnv1a64(const char *s);
/* The /30 an instance prefers: slot h & (slots-1); for a /16 that is
 * network 10.42.(n>>6).((n&0x3f)<<2) with n = h & 0x3fff. */
uint32_t netd_preferred_slot(const netd_subnet_t *s, uint64_t h);
/* Network address (host order) of slot n; host = +1, guest = +2. */
uint32_t netd_slot_network(const netd_subnet_t *s, uint32_t slot);
/* The slot of a network address inside the subnet, or -ERANGE. */
int netd_slot_of(const netd_subnet_t *s, uint32_t network, uint32_t *ret);
/* 02: then the low five bytes of h, most significant first: "02:xx:xx:xx:xx:xx". */
void netd_mac(uint64_t h, char buf[static 18]);

/* Collision resolution: the preferred slot, else the next free one (wrapping), as decided by
 * taken(slot). -ENOSPC when every slot is taken. */
int netd_pick_slot(const netd_subnet_t *s, uint64_t h, bool (*taken)(uint32_t slot, void *userdata), void *userdata,
                   uint32_t *ret);

void netd_ip4_str(uint32_t host_order, char buf[static 16]);

/* ---- attachments ------------------------------------------------------------------------------------ */

typedef struct netd_attachment {
        char instance_id[NETD_INSTANCE_ID_LEN + 1];
        char deployment_id[65]; /* "" when the caller did not say: no port takeover */
        char tap[16];           /* hk<instance_id> */
        char mac[18];
        uint32_t slot;
        uint32_t network; /* host order */
        port_spec_t *ports;
        size_t n_ports;
        int *reservations; /* per port: the socket that holds the host port (or proxy listener) */
        int localnet;      /* route_localnet on the TAP as last written: 0, 1, -1 unknown (adopted) */
} netd_attachment_t;

/* ---- nft ruleset (netd_nft.c) ---------------------------------------------------------------------- */

typedef struct netd_ruleset_opts {
        const char *subnet; /* "10.42.0.0/16" */
        bool outbound_nat;
        bool dnat; /* false in proxy mode: only isolation rules */
} netd_ruleset_opts_t;

/* Render the whole `table inet husk` as one nft script that replaces the previous one
 * atomically (add + delete + define). Pure: unit tested. *ret is malloc'd. */
int netd_nft_render(const netd_ruleset_opts_t *o, netd_attachment_t *const *a, size_t n, char **ret);
/* Run an nft script through libnftables, in *ctx (made on first use: one for netd's life, as
 * each context's end closes its netlink socket, which waits for a kernel RCU grace period, ~14 ms
 * here, on the attach path); on failure *ret_error (optional) holds nft's message. */
struct nft_ctx;
int netd_nft_run(struct nft_ctx **ctx, const char *script, char **ret_error);
void netd_nft_free(struct nft_ctx **ctx);

/* ---- TAPs (netd_tap.c) ------------------------------------------------------------------------------ */

/* Create (or take over) persistent TAP name with address host/30, up, route_localnet off. */
int netd_tap_create(const char *name, uint32_t host_addr);
/* Whether name is a pool clone's TAP name: NETD_POOL_TAP_PREFIX and 12 lowercase hex digits. */
bool netd_pool_tap_name_valid(const char *name);
/* Whether the device name under sysfs_net can be taken over: a TAP (tun_flags has IFF_TAP) that is
 * down (a rename needs it down). 0, else -EINVAL with *ret_error naming `tap` and the reason. */
int netd_pool_tap_check(const char *sysfs_net, const char *name, char *ret_error, size_t error_size);
/* Take over the (down) TAP pool_tap as name: rename it (its holder keeps its fd), then configure
 * it as netd_tap_create does. It stays as QEMU made it otherwise: not persistent. */
int netd_tap_take(const char *pool_tap, const char *name, uint32_t host_addr);
/* route_localnet of the TAP: see netd_ports_need_localnet. */
int netd_tap_set_localnet(const char *name, bool on);
int netd_tap_delete(const char *name);
/* The IPv4 address on name (host order), -ENODEV when it does not exist. */
int netd_tap_address(const char *name, uint32_t *ret);
/* Names of every hk<instance_id> link: a NULL-terminated array of malloc'd strings. */
int netd_tap_list(char ***ret);
/* ip_forward on in our namespace: published ports from outside and hairpins need it. */
int netd_sysctl_write(const char *path, const char *value);

/* ---- ports (netd_ports.c) -------------------------------------------------------------------------- */

/* Bind the host port of p (host_ip or every address): the conflict check and the reservation
 * that keeps others off it. listen: also listen (proxy mode). Returns the fd or -errno. */
int netd_port_reserve(const port_spec_t *p, bool listen_too);
/* Validate ports of one attach request; on failure *ret_error says which (ports[i]...). */
int netd_ports_check(const port_spec_t *ports, size_t n, char *ret_error, size_t size);
/* Whether nft DNAT of these ports needs route_localnet on the TAP: one of them is published on
 * 127.0.0.0/8 (by its host_ip, or as one of every local address). */
bool netd_ports_need_localnet(const port_spec_t *ports, size_t n);

/* ---- userspace forwarder (netd_proxy.c) -------------------------------------------------------------- */

typedef struct netd_proxy netd_proxy_t;

int netd_proxy_new(netd_proxy_t **ret);
void netd_proxy_free(netd_proxy_t *p);
/* Forward connections (tcp) or datagrams (udp) arriving on listen_fd (ownership stays with
 * the caller, who closes it only after netd_proxy_remove) to guest:target. tag groups them. */
int netd_proxy_add(netd_proxy_t *p, const char *tag, int listen_fd, port_protocol_t proto, uint32_t guest,
                   uint16_t target);
/* Stop forwarding everything tagged tag, close its live connections; returns once done. */
int netd_proxy_remove(netd_proxy_t *p, const char *tag);

/* ---- the daemon (netd_net.c, netd_bus.c, netd_state.c) ------------------------------------------------ */

typedef enum netd_mode {
        NETD_MODE_NFT,
        NETD_MODE_PROXY,
} netd_mode_t;

typedef struct netd {
        husk_daemon_ctx_t *ctx;
        netd_subnet_t subnet; /* netd.subnet, parsed at start: a reload cannot change it */
        netd_mode_t mode;
        bool outbound_nat; /* netd.outbound_nat: a reload changes it and syncs the rules */
        char *state_path;
        netd_attachment_t **attachments; /* sorted by nothing; small */
        size_t n_attachments;
        netd_proxy_t *proxy;
        bus_pub_t *pub;
        bus_server_t *server;
        bus_sub_t *events;
        struct nft_ctx *nft; /* libnftables' context, kept (netd_nft_run) */
} netd_t;

int netd_open(netd_t *n);
/* SIGHUP: netd.outbound_nat applies at once (the rules are synced); netd.subnet, netd.forwarder
 * and state_dir need a restart and are refused (the running config stays). */
int netd_reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh);
void netd_close(netd_t *n);

netd_attachment_t *netd_find(netd_t *n, const char *instance_id);

/* ---- counters (netd_stats.c) ---------------------------------------------------------------------- */

struct net_counters;
/* <sysfs_net>/<tap>/statistics, swapped into the guest's view (the TAP's tx is the guest's rx). */
int netd_tap_counters(const char *sysfs_net, const char *tap, struct net_counters *ret);
/* net.stats (proto/SCHEMA.md). */
int netd_method_stats(bus_request_t *req, msgpack_packer *pk, void *userdata);
/* Create or return the attachment of instance_id; on a port conflict returns -EADDRINUSE with
 * *ret_error naming ports[i].published. A port another instance of the same deployment_id
 * publishes is taken over (a replacement started before the old instance stops). take_tap (or
 * NULL): a pool clone's TAP to become the instance's instead of a new one (netd_tap_take);
 * -EINVAL, nothing changed, when it is not one netd_pool_tap_check accepts. */
int netd_attach(netd_t *n, const char *instance_id, const char *deployment_id, const port_spec_t *ports, size_t n_ports,
                const char *take_tap, netd_attachment_t **ret, char *ret_error, size_t error_size);
int netd_detach(netd_t *n, const char *instance_id);
/* Re-render and apply the nft table from the attachments. */
int netd_sync_rules(netd_t *n);
/* Find TAPs and the state file again after a restart. */
int netd_adopt(netd_t *n);
void netd_attachment_free(netd_attachment_t *a);

int netd_state_save(netd_t *n);
/* Ports (and deployment) per instance id, as saved: calls fn for each entry. */
int netd_state_load(const char *path,
                    void (*fn)(const char *id, const char *deployment_id, port_spec_t *ports, size_t n, void *ud),
                    void *ud);

int netd_bus_open(netd_t *n);
void netd_bus_close(netd_t *n);
void netd_publish(netd_t *n, const char *type, const netd_attachment_t *a, const char *message);
