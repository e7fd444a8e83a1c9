/* agent_identity.c: a template clone becomes itself: fresh entropy, the wall clock, its hostname and its NIC's MAC and address, all from the host's identity request. */
#include "services/agent/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/mp.h"

#define ENTROPY_MIN 32  /* bytes: a 256-bit seed at least */
#define ENTROPY_MAX 512 /* bytes: the schema's bound */
#define HOSTNAME_MAX 63

/* Every clone of a template resumes with the template's RNG state: two clones would produce
 * the same "random" bytes. The host's bytes are mixed in and credited (RNDADDENTROPY), then the
 * CRNG is reseeded at once (RNDRESEEDCRNG) instead of at its next scheduled reseed, so the
 * first byte read after this answer already depends on them. */
static int reseed(const uint8_t *bytes, size_t n) {
        struct {
                struct rand_pool_info info;
                uint8_t buf[ENTROPY_MAX];
        } req = {};
        _cleanup_close_ int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        memcpy(req.buf, bytes, n);
        req.info.entropy_count = (int)(n * 8);
        req.info.buf_size = (int)n;
        if (ioctl(fd, RNDADDENTROPY, &req.info) < 0)
                return -errno;
        explicit_bzero(req.buf, sizeof(req.buf));
        if (ioctl(fd, RNDRESEEDCRNG) < 0)
                return -errno;
        return 0;
}

static int parse_mac(const char *s, uint8_t mac[6]) {
        unsigned v[6];
        char end;

        if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
                return -EINVAL;
        for (int k = 0; k < 6; k++)
                mac[k] = (uint8_t)v[k];
        return 0;
}

/* eth0 down, its MAC, up again: virtio-net tells QEMU the new address (its receive filter). */
static int set_mac(const uint8_t mac[6]) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};

        if (fd < 0)
                return -errno;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags &= ~IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
        memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
        if (ioctl(fd, SIOCSIFHWADDR, &ifr) < 0)
                return -errno;
        return 0; /* agent_net_configure brings it up */
}

static int parse_net(const msgpack_object *req, agent_net_t *n, char *msg, size_t msg_size) {
        _cleanup_free_ char *ip = NULL, *gw = NULL;
        struct in_addr a;
        uint64_t prefix;
        int r;

        *n = (agent_net_t){};
        r = mp_get_str(req, "ip", INET_ADDRSTRLEN, &ip);
        if (r == -ENOENT)
                return 0;
        if (r < 0 || inet_pton(AF_INET, ip, &a) != 1)
                return snprintf(msg, msg_size, "ip: must be a dotted IPv4 address"), -EINVAL;
        n->addr = a.s_addr;
        if (mp_get_u64(req, "prefix", &prefix) < 0 || prefix < 1 || prefix > 32)
                return snprintf(msg, msg_size, "prefix: must be 1..32"), -EINVAL;
        n->prefix = (unsigned)prefix;
        r = mp_get_str(req, "gw", INET_ADDRSTRLEN, &gw);
        if (r >= 0 && inet_pton(AF_INET, gw, &a) == 1)
                n->gateway = a.s_addr;
        else if (r != -ENOENT)
                return snprintf(msg, msg_size, "gw: must be a dotted IPv4 address"), -EINVAL;
        n->configured = true;
        return 0;
}

void agent_identity_request(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        _cleanup_free_ char *hostname = NULL, *mac_text = NULL;
        const msgpack_object *entropy = mp_map_get(req, "entropy");
        uint64_t time_ns;
        uint8_t mac[6];
        agent_net_t net;
        char msg[256];
        int r;

        if (!entropy || entropy->type != MSGPACK_OBJECT_BIN || entropy->via.bin.size < ENTROPY_MIN ||
            entropy->via.bin.size > ENTROPY_MAX)
                return agent_pack_error(pk, &id, "invalid", "entropy: must be 32 to 512 bytes (bin)");
        if (mp_get_u64(req, "time_ns", &time_ns) < 0)
                return agent_pack_error(pk, &id, "invalid", "time_ns: must be a uint");
        if (mp_get_str(req, "hostname", HOSTNAME_MAX, &hostname) < 0 || !agent_hostname_valid(hostname))
                return agent_pack_error(pk, &id, "invalid", "hostname: must be a hostname");
        r = mp_get_str(req, "mac", 17, &mac_text);
        if ((r < 0 && r != -ENOENT) || (mac_text && parse_mac(mac_text, mac) < 0))
                return agent_pack_error(pk, &id, "invalid", "mac: must be aa:bb:cc:dd:ee:ff");
        if (parse_net(req, &net, msg, sizeof(msg)) < 0)
                return agent_pack_error(pk, &id, "invalid", msg);

        /* Entropy first: nothing below may draw random numbers from the template's state. */
        r = reseed((const uint8_t *)entropy->via.bin.ptr, entropy->via.bin.size);
        if (r < 0)
                return agent_pack_error(pk, &id, "failed", "cannot reseed the kernel's RNG");
        if (clock_settime(CLOCK_REALTIME, &(struct timespec){ .tv_sec = (time_t)(time_ns / 1000000000u),
                                                              .tv_nsec = (long)(time_ns % 1000000000u) }) < 0)
                log_agent_warning_errno(errno, "Failed to set the clock, ignoring: %m");
        if (sethostname(hostname, strlen(hostname)) < 0)
                log_agent_warning_errno(errno, "Failed to set the hostname to %s, ignoring: %m", hostname);
        if (mac_text && (r = set_mac(mac)) < 0) {
                snprintf(msg, sizeof(msg), "cannot set eth0's MAC to %s: %s", mac_text, strerror(-r));
                return agent_pack_error(pk, &id, "failed", msg);
        }
        if (net.configured) {
                r = agent_net_configure(&net);
                if (r < 0) {
                        snprintf(msg, sizeof(msg), "cannot configure eth0: %s", strerror(-r));
                        return agent_pack_error(pk, &id, "failed", msg);
                }
                s->net = net;
        }
        log_agent_info("identity taken (instance %s)", hostname);
        msgpack_pack_map(pk, 2);
        mp_pack_kv_str(pk, "type", "identity");
        mp_pack_kv_u64(pk, "id", id);
}
