/* netd_nft.c: the `table inet husk` ruleset, rendered whole from the attachments and applied atomically.
 *
 * Why libnftables rather than the nft binary: one transaction per change without a fork and
 * exec on the attach path, nft's own parser and error messages, and nothing to find in $PATH.
 * Why the whole table each time: one atomic replace (add, delete, define in one batch) can
 * never leave half an instance behind, re-adoption after a restart is the same code as a
 * change, and conntrack keeps established connections (their NAT is in the conntrack entry,
 * not in the rules) across every replace. */
#include <errno.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/netd/netd.h"

typedef struct buf {
        char *s;
        size_t len, cap;
        int error;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) _printf_(2, 3);
static void put(buf_t *b, const char *fmt, ...) {
        va_list ap;
        int n;

        if (b->error)
                return;
        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        b->error = -EINVAL;
                        return;
                }
                if (b->s && b->len + (size_t)n < b->cap) {
                        b->len += (size_t)n;
                        return;
                }
                size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
                char *s = realloc(b->s, cap);
                if (!s) {
                        b->error = -ENOMEM;
                        return;
                }
                b->s = s;
                b->cap = cap;
        }
}

/* The host address(es) of one published port. Without host_ip, every local address matches:
 * fib says which. 0.0.0.0 is how Ring users write "every address". */
static void put_host_match(buf_t *b, const port_spec_t *p) {
        if (p->host_ip[0] && !streq(p->host_ip, "0.0.0.0"))
                put(b, "ip daddr %s", p->host_ip);
        else
                put(b, "meta nfproto ipv4 fib daddr type local");
}

/* One published port, in prerouting (from outside and from guests) or output (from the host
 * itself, 127.0.0.1 included). */
static void put_dnat(buf_t *b, const netd_attachment_t *a, const port_spec_t *p) {
        const char *proto = port_protocol_to_string(p->protocol);
        char guest[16];

        netd_ip4_str(a->network + 2, guest);
        put(b, "\t\t");
        put_host_match(b, p);
        put(b, " %s dport %u dnat ip to %s:%u comment \"husk:%s\"\n", proto, p->published, guest, p->target,
            a->instance_id);
}

/* Before conntrack (priority raw), so that such a packet never makes a connection: a guest
 * never has a reason to use a loopback address, and route_localnet on a TAP (see
 * netd_ports_need_localnet) would otherwise let it reach the host's loopback services, or
 * claim to be one of them. */
static void put_guard(buf_t *b) {
        static const char *const matches[] = { "ip saddr 127.0.0.0/8", "ip daddr 127.0.0.0/8", "ip6 saddr ::1",
                                               "ip6 daddr ::1" };

        put(b, "\tchain guard {\n\t\ttype filter hook prerouting priority raw; policy accept;\n");
        for (size_t k = 0; k < ELEMENTSOF(matches); k++)
                put(b, "\t\tiifname \"" NETD_TAP_PREFIX "*\" %s drop comment \"husk:guest-loopback\"\n", matches[k]);
        put(b, "\t}\n");
}

/* What a guest may send to the host itself: the return path of what the host opened (published
 * ports, health checks, the proxy's connections), echo requests to its own gateway (how a
 * guest tells its link works; fib with iif: an address of the TAP it came in on), and in
 * proxy mode the published ports, which nft mode reaches by DNAT through forward. Nothing else:
 * not the API, not the bus, not any service the host runs on a wildcard address. */
static void put_input(buf_t *b, const netd_ruleset_opts_t *o, netd_attachment_t *const *a, size_t n) {
        put(b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n");
        put(b, "\t\tiifname \"" NETD_TAP_PREFIX "*\" ct state established,related accept\n");
        put(b, "\t\tiifname \"" NETD_TAP_PREFIX "*\" icmp type echo-request fib daddr . iif type local accept "
               "comment \"husk:guest-ping\"\n");
        for (size_t i = 0; !o->dnat && i < n; i++)
                for (size_t k = 0; k < a[i]->n_ports; k++) {
                        const port_spec_t *p = &a[i]->ports[k];

                        put(b, "\t\tiifname \"" NETD_TAP_PREFIX "*\" ");
                        put_host_match(b, p);
                        put(b, " %s dport %u accept comment \"husk:%s\"\n", port_protocol_to_string(p->protocol),
                            p->published, a[i]->instance_id);
                }
        put(b, "\t\tiifname \"" NETD_TAP_PREFIX "*\" drop comment \"husk:guest-to-host\"\n");
        put(b, "\t}\n");
}

int netd_nft_render(const netd_ruleset_opts_t *o, netd_attachment_t *const *a, size_t n, char **ret) {
        static const char *const nat_chains[] = { "prerouting", "output" };
        buf_t b = {};

        /* "add" first so that "delete" never fails on a fresh host: one batch, all or nothing. */
        put(&b, "add table inet " NETD_TABLE "\ndelete table inet " NETD_TABLE "\n");
        put(&b, "table inet " NETD_TABLE " {\n");
        put_guard(&b);
        for (size_t c = 0; c < ELEMENTSOF(nat_chains); c++) {
                /* nft names the dstnat priority (-100) only for prerouting. */
                put(&b, "\tchain %s {\n\t\ttype nat hook %s priority -100; policy accept;\n", nat_chains[c],
                    nat_chains[c]);
                for (size_t i = 0; o->dnat && i < n; i++)
                        for (size_t k = 0; k < a[i]->n_ports; k++)
                                put_dnat(&b, a[i], &a[i]->ports[k]);
                put(&b, "\t}\n");
        }
        put(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
        /* A client on 127.0.0.1 cannot be answered by the guest: it talks to the TAP's address. */
        put(&b, "\t\toifname \"" NETD_TAP_PREFIX "*\" ip saddr 127.0.0.0/8 masquerade comment \"husk:loopback\"\n");
        if (o->outbound_nat)
                put(&b, "\t\tip saddr %s oifname != \"" NETD_TAP_PREFIX "*\" masquerade comment \"husk:outbound\"\n",
                    o->subnet);
        put(&b, "\t}\n");
        put_input(&b, o, a, n);
        put(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n");
        put(&b, "\t\tct state established,related accept\n");
        /* Published ports stay reachable whoever connects, a sibling through the host included. */
        put(&b, "\t\tct status dnat accept\n");
        put(&b,
            "\t\tiifname \"" NETD_TAP_PREFIX "*\" oifname \"" NETD_TAP_PREFIX "*\" drop comment \"husk:isolation\"\n");
        if (!o->outbound_nat)
                put(&b, "\t\tiifname \"" NETD_TAP_PREFIX "*\" drop comment \"husk:no-outbound\"\n");
        put(&b, "\t}\n}\n");
        if (b.error) {
                free(b.s);
                return b.error;
        }
        *ret = b.s;
        return 0;
}

int netd_nft_run(struct nft_ctx **ctx, const char *script, char **ret_error) {
        const char *err;
        int r;

        if (!*ctx) {
                *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
                if (!*ctx)
                        return -ENOMEM;
                nft_ctx_buffer_output(*ctx);
                nft_ctx_buffer_error(*ctx);
        }
        r = nft_run_cmd_from_buffer(*ctx, script);
        /* Read (which empties them) after every run: nothing of this one is left for the next. */
        (void)nft_ctx_get_output_buffer(*ctx);
        err = nft_ctx_get_error_buffer(*ctx);
        if (r != 0) {
                if (ret_error)
                        *ret_error = strdup(err && *err ? err : "nft failed");
                return -EIO;
        }
        return 0;
}

void netd_nft_free(struct nft_ctx **ctx) {
        if (*ctx)
                nft_ctx_free(*ctx);
        *ctx = NULL;
}
