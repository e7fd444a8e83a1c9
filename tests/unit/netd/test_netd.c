/* test_netd.c: netd's pure parts: /30 and MAC derivation (golden values), collision resolution,
 * subnet and port-spec checks, the nft ruleset it renders and where route_localnet goes, and
 * which pool clone's TAP net.attach may take over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/netd/netd.h"

static netd_subnet_t subnet16(void) {
        netd_subnet_t s;

        assert_int_equal(netd_subnet_parse("10.42.0.0/16", &s), 0);
        return s;
}

/* FNV-1a 64 reference vectors ("" and "a" are the published ones), and what the issue's
 * formula gives for them: network 10.42.(n>>6).((n&0x3f)<<2), n = h & 0x3fff. */
static void test_derivation_golden(void **state) {
        static const struct {
                const char *id;
                uint64_t h;
                const char *network, *mac;
        } v[] = {
                { "", 0xcbf29ce484222325ULL, "10.42.140.148", "02:e4:84:22:23:25" },
                { "a", 0xaf63dc4c8601ec8cULL, "10.42.178.48", "02:4c:86:01:ec:8c" },
                { "0a1b2c3d4e5f", 0xefec3453f7658475ULL, "10.42.17.212", "02:53:f7:65:84:75" },
                { "ffffffffffff", 0x6cbb028682f87315ULL, "10.42.204.84", "02:86:82:f8:73:15" },
        };
        netd_subnet_t s = subnet16();

        for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
                char ip[16], mac[18];
                uint64_t h = netd_fnv1a64(v[k].id);
                uint32_t slot = netd_preferred_slot(&s, h), back;

                assert_int_equal(h, v[k].h);
                netd_ip4_str(netd_slot_network(&s, slot), ip);
                assert_string_equal(ip, v[k].network);
                netd_mac(h, mac);
                assert_string_equal(mac, v[k].mac);
                assert_int_equal(netd_slot_of(&s, netd_slot_network(&s, slot), &back), 0);
                assert_int_equal(back, slot);
        }
}

static void test_subnet_parse(void **state) {
        netd_subnet_t s;

        assert_int_equal(netd_subnet_parse("10.42.0.0/16", &s), 0);
        assert_int_equal(netd_subnet_slots(&s), 16384);
        assert_int_equal(netd_subnet_parse("192.168.50.0/24", &s), 0);
        assert_int_equal(netd_subnet_slots(&s), 64);
        assert_int_equal(netd_subnet_parse("10.42.0.0/30", &s), 0);
        assert_int_equal(netd_subnet_slots(&s), 1);
        assert_int_equal(netd_subnet_parse("10.42.0.1/16", &s), -EINVAL); /* not aligned */
        assert_int_equal(netd_subnet_parse("10.42.0.0/31", &s), -EINVAL);
        assert_int_equal(netd_subnet_parse("10.42.0.0/7", &s), -EINVAL);
        assert_int_equal(netd_subnet_parse("10.42.0.0", &s), -EINVAL);
        assert_int_equal(netd_subnet_parse("10.42.0.0/1x", &s), -EINVAL);
        assert_int_equal(netd_subnet_parse("nonsense/16", &s), -EINVAL);
        assert_int_equal(netd_slot_of(&s, 0x0a2b0000, &(uint32_t){ 0 }), -ERANGE); /* 10.43.0.0 */
}

typedef struct taken_set {
        uint32_t slots[8];
        size_t n;
} taken_set_t;

static bool is_taken(uint32_t slot, void *userdata) {
        taken_set_t *t = userdata;

        for (size_t k = 0; k < t->n; k++)
                if (t->slots[k] == slot)
                        return true;
        return false;
}

/* A live instance on the preferred /30 pushes the newcomer to the next free one, wrapping at
 * the end of the subnet; a full subnet is an error, never a shared /30. */
static void test_collision(void **state) {
        netd_subnet_t s = subnet16(), small;
        uint64_t h = netd_fnv1a64("0a1b2c3d4e5f");
        uint32_t pref = netd_preferred_slot(&s, h), got;
        taken_set_t t = { .slots = { pref, pref + 1 }, .n = 2 };

        assert_int_equal(netd_pick_slot(&s, h, is_taken, &(taken_set_t){}, &got), 0);
        assert_int_equal(got, pref);
        assert_int_equal(netd_pick_slot(&s, h, is_taken, &t, &got), 0);
        assert_int_equal(got, pref + 2);

        /* A /29 holds two /30s. */
        assert_int_equal(netd_subnet_parse("10.9.0.0/29", &small), 0);
        h = 1; /* prefers slot 1 */
        t = (taken_set_t){ .slots = { 1 }, .n = 1 };
        assert_int_equal(netd_pick_slot(&small, h, is_taken, &t, &got), 0);
        assert_int_equal(got, 0); /* wrapped */
        t = (taken_set_t){ .slots = { 0, 1 }, .n = 2 };
        assert_int_equal(netd_pick_slot(&small, h, is_taken, &t, &got), -ENOSPC);
}

static void test_ports_check(void **state) {
        port_spec_t ok[] = { { .published = 80, .target = 80 },
                             { .published = 80, .target = 53, .protocol = PORT_UDP } };
        port_spec_t dup[] = { { .published = 80, .target = 80 },
                              { .published = 81, .target = 80 },
                              { .published = 80, .target = 8080 } };
        char error[256];

        assert_int_equal(netd_ports_check(ok, 2, error, sizeof(error)), 0);
        assert_int_equal(netd_ports_check(dup, 3, error, sizeof(error)), -EINVAL);
        assert_string_equal(error, "ports[2].published: 80/tcp is already ports[0]");
}

static const char golden_ruleset[] =
        "add table inet husk\n"
        "delete table inet husk\n"
        "table inet husk {\n"
        "\tchain guard {\n"
        "\t\ttype filter hook prerouting priority raw; policy accept;\n"
        "\t\tiifname \"hk*\" ip saddr 127.0.0.0/8 drop comment \"husk:guest-loopback\"\n"
        "\t\tiifname \"hk*\" ip daddr 127.0.0.0/8 drop comment \"husk:guest-loopback\"\n"
        "\t\tiifname \"hk*\" ip6 saddr ::1 drop comment \"husk:guest-loopback\"\n"
        "\t\tiifname \"hk*\" ip6 daddr ::1 drop comment \"husk:guest-loopback\"\n"
        "\t}\n"
        "\tchain prerouting {\n"
        "\t\ttype nat hook prerouting priority -100; policy accept;\n"
        "\t\tmeta nfproto ipv4 fib daddr type local tcp dport 8080 dnat ip to 10.42.17.214:80 comment "
        "\"husk:0a1b2c3d4e5f\"\n"
        "\t\tip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.42.17.214:53 comment \"husk:0a1b2c3d4e5f\"\n"
        "\t}\n"
        "\tchain output {\n"
        "\t\ttype nat hook output priority -100; policy accept;\n"
        "\t\tmeta nfproto ipv4 fib daddr type local tcp dport 8080 dnat ip to 10.42.17.214:80 comment "
        "\"husk:0a1b2c3d4e5f\"\n"
        "\t\tip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.42.17.214:53 comment \"husk:0a1b2c3d4e5f\"\n"
        "\t}\n"
        "\tchain postrouting {\n"
        "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        "\t\toifname \"hk*\" ip saddr 127.0.0.0/8 masquerade comment \"husk:loopback\"\n"
        "\t}\n"
        "\tchain input {\n"
        "\t\ttype filter hook input priority filter; policy accept;\n"
        "\t\tiifname \"hk*\" ct state established,related accept\n"
        "\t\tiifname \"hk*\" icmp type echo-request fib daddr . iif type local accept comment \"husk:guest-ping\"\n"
        "\t\tiifname \"hk*\" drop comment \"husk:guest-to-host\"\n"
        "\t}\n"
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter; policy accept;\n"
        "\t\tct state established,related accept\n"
        "\t\tct status dnat accept\n"
        "\t\tiifname \"hk*\" oifname \"hk*\" drop comment \"husk:isolation\"\n"
        "\t\tiifname \"hk*\" drop comment \"husk:no-outbound\"\n"
        "\t}\n"
        "}\n";

static void test_render(void **state) {
        netd_subnet_t s = subnet16();
        port_spec_t ports[] = { { .published = 8080, .target = 80 },
                                { .published = 5353, .target = 53, .protocol = PORT_UDP, .host_ip = "127.0.0.1" } };
        netd_attachment_t a = { .instance_id = "0a1b2c3d4e5f",
                                .tap = "hk0a1b2c3d4e5f",
                                .ports = ports,
                                .n_ports = 2,
                                .network =
                                        netd_slot_network(&s, netd_preferred_slot(&s, netd_fnv1a64("0a1b2c3d4e5f"))) };
        netd_attachment_t *list[] = { &a };
        netd_ruleset_opts_t o = { .subnet = "10.42.0.0/16", .dnat = true };
        char *script = NULL;

        assert_int_equal(netd_nft_render(&o, list, 1, &script), 0);
        assert_string_equal(script, golden_ruleset);
        free(script);

        /* host_ip 0.0.0.0 means every local address, as no host_ip does. */
        snprintf(ports[1].host_ip, sizeof(ports[1].host_ip), "0.0.0.0");
        assert_int_equal(netd_nft_render(&o, list, 1, &script), 0);
        assert_null(strstr(script, "ip daddr 0.0.0.0"));
        assert_non_null(strstr(script, "meta nfproto ipv4 fib daddr type local udp dport 5353 dnat"));
        free(script);
        snprintf(ports[1].host_ip, sizeof(ports[1].host_ip), "127.0.0.1");

        /* Outbound NAT: masquerade out of the subnet, no drop of new guest connections. */
        o.outbound_nat = true;
        assert_int_equal(netd_nft_render(&o, list, 1, &script), 0);
        assert_non_null(
                strstr(script, "ip saddr 10.42.0.0/16 oifname != \"hk*\" masquerade comment \"husk:outbound\""));
        assert_null(strstr(script, "husk:no-outbound"));
        free(script);

        /* Proxy mode: no DNAT; guests reach the published ports where the proxy listens (as
         * DNAT through forward lets them in nft mode), and nothing else on the host. */
        o.dnat = false;
        assert_int_equal(netd_nft_render(&o, list, 1, &script), 0);
        assert_null(strstr(script, "dnat ip to"));
        assert_non_null(strstr(
                script, "\t\tiifname \"hk*\" meta nfproto ipv4 fib daddr type local tcp dport 8080 accept "
                        "comment \"husk:0a1b2c3d4e5f\"\n"
                        "\t\tiifname \"hk*\" ip daddr 127.0.0.1 udp dport 5353 accept comment \"husk:0a1b2c3d4e5f\"\n"
                        "\t\tiifname \"hk*\" drop comment \"husk:guest-to-host\"\n"));
        free(script);
        /* No instance at all still renders the isolation, the guard and the input filter. */
        assert_int_equal(netd_nft_render(&o, NULL, 0, &script), 0);
        assert_non_null(strstr(script, "husk:isolation"));
        assert_non_null(strstr(script, "iifname \"hk*\" ip daddr 127.0.0.0/8 drop"));
        assert_non_null(strstr(script, "iifname \"hk*\" drop comment \"husk:guest-to-host\""));
        free(script);
}

/* route_localnet is for ports the host reaches on 127.0.0.0/8: no host_ip, 0.0.0.0 or a
 * loopback address; never for a port bound to another address only, nor for no port. */
static void test_need_localnet(void **state) {
        port_spec_t p[] = { { .published = 80, .target = 80, .host_ip = "198.51.100.1" },
                            { .published = 81, .target = 80, .host_ip = "127.0.0.5" } };

        assert_false(netd_ports_need_localnet(NULL, 0));
        assert_false(netd_ports_need_localnet(p, 1));
        assert_true(netd_ports_need_localnet(p, 2));
        assert_true(netd_ports_need_localnet(&p[1], 1));
        snprintf(p[0].host_ip, sizeof(p[0].host_ip), "0.0.0.0");
        assert_true(netd_ports_need_localnet(p, 1));
        p[0].host_ip[0] = '\0';
        assert_true(netd_ports_need_localnet(p, 1));
        snprintf(p[0].host_ip, sizeof(p[0].host_ip), "10.127.0.1");
        assert_false(netd_ports_need_localnet(p, 1));
}

/* net.attach's tap: hkp + 12 lowercase hex digits, nothing else (not an instance's hk name). */
static void test_pool_tap_name(void **state) {
        assert_true(netd_pool_tap_name_valid("hkp0123456789ab"));
        assert_true(netd_pool_tap_name_valid("hkpffffffffffff"));
        assert_false(netd_pool_tap_name_valid(NULL));
        assert_false(netd_pool_tap_name_valid(""));
        assert_false(netd_pool_tap_name_valid("hkp"));
        assert_false(netd_pool_tap_name_valid("hk0123456789ab"));  /* an instance's TAP */
        assert_false(netd_pool_tap_name_valid("hkq0123456789ab")); /* another prefix */
        assert_false(netd_pool_tap_name_valid("tap0123456789ab"));
        assert_false(netd_pool_tap_name_valid("hkp0123456789AB"));  /* uppercase */
        assert_false(netd_pool_tap_name_valid("hkp0123456789a"));   /* 11 digits */
        assert_false(netd_pool_tap_name_valid("hkp0123456789abc")); /* 13 */
        assert_false(netd_pool_tap_name_valid("hkp0123456789ag"));
        assert_false(netd_pool_tap_name_valid("hkp../../../etc"));
}

static void put_attr(const char *dir, const char *dev, const char *attr, const char *value) {
        char path[600];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, dev);
        assert_int_equal(mkdir_p(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/%s/%s", dir, dev, attr);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(value, f);
        fclose(f);
}

/* What sysfs says of the device: a TAP (tun_flags with IFF_TAP, 0x2) that is down (flags
 * without IFF_UP, 0x1). Everything else is refused with a message naming `tap`. */
static void test_pool_tap_check(void **state) {
        char dir[] = "/tmp/husk-test-sysfs-XXXXXX", error[256] = "";

        assert_non_null(mkdtemp(dir));
        /* As QEMU leaves it: IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, down (broadcast|multicast). */
        put_attr(dir, "hkp000000000001", "tun_flags", "0x5002\n");
        put_attr(dir, "hkp000000000001", "flags", "0x1002\n");
        assert_int_equal(netd_pool_tap_check(dir, "hkp000000000001", error, sizeof(error)), 0);

        assert_int_equal(netd_pool_tap_check(dir, "hkp000000000009", error, sizeof(error)), -EINVAL);
        assert_string_equal(error, "tap: no network device hkp000000000009");

        put_attr(dir, "hkp000000000002", "tun_flags", "0x5002\n"); /* up */
        put_attr(dir, "hkp000000000002", "flags", "0x1003\n");
        assert_int_equal(netd_pool_tap_check(dir, "hkp000000000002", error, sizeof(error)), -EINVAL);
        assert_string_equal(error, "tap: hkp000000000002 is up, not a pool clone's TAP");

        put_attr(dir, "hkp000000000003", "flags", "0x1002\n"); /* a veth or a dummy: no tun_flags */
        assert_int_equal(netd_pool_tap_check(dir, "hkp000000000003", error, sizeof(error)), -EINVAL);
        assert_string_equal(error, "tap: hkp000000000003 is not a TAP device");

        put_attr(dir, "hkp000000000004", "tun_flags", "0x1001\n"); /* a TUN: no Ethernet frames */
        put_attr(dir, "hkp000000000004", "flags", "0x1090\n");
        assert_int_equal(netd_pool_tap_check(dir, "hkp000000000004", error, sizeof(error)), -EINVAL);
        assert_string_equal(error, "tap: hkp000000000004 is not a TAP device");

        put_attr(dir, "hkp000000000005", "tun_flags", "0x5002\n");
        put_attr(dir, "hkp000000000005", "flags", "down\n");
        assert_int_equal(netd_pool_tap_check(dir, "hkp000000000005", error, sizeof(error)), -EINVAL);
        assert_non_null(strstr(error, "tap: cannot read the flags of hkp000000000005"));

        assert_int_equal(rm_rf(dir), 0);
}

/* net.attach with a tap: a malformed or absent one is refused before anything happens; a retried
 * attach answers the attachment it made, though its pool TAP was renamed away since. */
static void test_attach_pool_tap_refused_and_retry(void **state) {
        netd_t n = { .mode = NETD_MODE_NFT };
        netd_attachment_t existing = { .instance_id = "0123456789ab", .tap = "hk0123456789ab" }, *a = NULL,
                          *list[] = { &existing };
        char error[256] = "";

        assert_int_equal(netd_subnet_parse("10.42.0.0/16", &n.subnet), 0);
        assert_int_equal(netd_attach(&n, "aaaaaaaaaaaa", NULL, NULL, 0, "eth0", &a, error, sizeof(error)), -EINVAL);
        assert_string_equal(error, "tap: must be hkp followed by 12 lowercase hex digits");
        assert_int_equal(netd_attach(&n, "aaaaaaaaaaaa", NULL, NULL, 0, "hk0123456789ab", &a, error, sizeof(error)),
                         -EINVAL);
        /* No device of that name here (hkp names exist only in the namespaces of pool clones). */
        assert_int_equal(netd_attach(&n, "aaaaaaaaaaaa", NULL, NULL, 0, "hkpfedcba987654", &a, error, sizeof(error)),
                         -EINVAL);
        assert_string_equal(error, "tap: no network device hkpfedcba987654");
        assert_null(a);
        assert_int_equal(n.n_attachments, 0);

        n.attachments = list;
        n.n_attachments = 1;
        assert_int_equal(netd_attach(&n, "0123456789ab", NULL, NULL, 0, "hkpfedcba987654", &a, error, sizeof(error)),
                         0);
        assert_ptr_equal(a, &existing);
        assert_int_equal(n.n_attachments, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_derivation_golden),
                cmocka_unit_test(test_subnet_parse),
                cmocka_unit_test(test_collision),
                cmocka_unit_test(test_ports_check),
                cmocka_unit_test(test_render),
                cmocka_unit_test(test_need_localnet),
                cmocka_unit_test(test_pool_tap_name),
                cmocka_unit_test(test_pool_tap_check),
                cmocka_unit_test(test_attach_pool_tap_refused_and_retry),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
