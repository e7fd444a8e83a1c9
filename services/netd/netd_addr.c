/* netd_addr.c: the deterministic /30 and MAC of an instance, and collision resolution. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/netd/netd.h"

int netd_subnet_parse(const char *s, netd_subnet_t *ret) {
        char addr[INET_ADDRSTRLEN];
        const char *slash;
        struct in_addr a;
        uint64_t prefix;
        uint32_t base, mask;

        if (!s || !(slash = strchr(s, '/')) || (size_t)(slash - s) >= sizeof(addr))
                return -EINVAL;
        memcpy(addr, s, (size_t)(slash - s));
        addr[slash - s] = '\0';
        if (inet_pton(AF_INET, addr, &a) != 1 || parse_u64(slash + 1, &prefix) < 0 || prefix < 8 || prefix > 30)
                return -EINVAL;
        base = ntohl(a.s_addr);
        mask = (uint32_t)(0xffffffffu << (32 - prefix));
        if (base & ~mask)
                return -EINVAL;
        *ret = (netd_subnet_t){ .base = base, .prefix = (unsigned)prefix };
        return 0;
}

uint32_t netd_subnet_slots(const netd_subnet_t *s) { return 1u << (30 - s->prefix); }

uint64_t netd_fnv1a64(const char *s) {
        uint64_t h = 0xcbf29ce484222325ULL;

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 0x100000001b3ULL;
        }
        return h;
}

uint32_t netd_preferred_slot(const netd_subnet_t *s, uint64_t h) { return (uint32_t)(h & (netd_subnet_slots(s) - 1)); }

uint32_t netd_slot_network(const netd_subnet_t *s, uint32_t slot) { return s->base + (slot << 2); }

int netd_slot_of(const netd_subnet_t *s, uint32_t network, uint32_t *ret) {
        if (network < s->base || (network & 3) || ((network - s->base) >> 2) >= netd_subnet_slots(s))
                return -ERANGE;
        *ret = (network - s->base) >> 2;
        return 0;
}

void netd_mac(uint64_t h, char buf[static 18]) {
        snprintf(buf, 18, "02:%02x:%02x:%02x:%02x:%02x", (unsigned)(h >> 32) & 0xff, (unsigned)(h >> 24) & 0xff,
                 (unsigned)(h >> 16) & 0xff, (unsigned)(h >> 8) & 0xff, (unsigned)h & 0xff);
}

int netd_pick_slot(const netd_subnet_t *s, uint64_t h, bool (*taken)(uint32_t slot, void *userdata), void *userdata,
                   uint32_t *ret) {
        uint32_t slots = netd_subnet_slots(s), first = netd_preferred_slot(s, h);

        /* Unlike Ring, a collision is never shared silently: the next free /30 it is. */
        for (uint32_t k = 0; k < slots; k++) {
                uint32_t slot = (first + k) & (slots - 1);
                if (!taken(slot, userdata)) {
                        *ret = slot;
                        return 0;
                }
        }
        return -ENOSPC;
}

void netd_ip4_str(uint32_t host_order, char buf[static 16]) {
        snprintf(buf, 16, "%u.%u.%u.%u", host_order >> 24, (host_order >> 16) & 0xff, (host_order >> 8) & 0xff,
                 host_order & 0xff);
}
