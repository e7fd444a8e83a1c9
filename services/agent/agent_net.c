/* agent_net.c: eth0 as the host's netd assigned it (husk.ip, husk.gw, husk.dns on the kernel command line), with ioctls: no ip binary needed. */
#include "services/agent/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define IFACE "eth0"

static int parse_addr(const char *s, uint32_t *ret) {
        struct in_addr a;

        if (inet_pton(AF_INET, s, &a) != 1)
                return -EINVAL;
        *ret = a.s_addr;
        return 0;
}

int agent_net_parse(const char *cmdline, agent_net_t *n) {
        _cleanup_free_ char *ip = NULL, *gw = NULL, *dns = NULL;
        uint64_t prefix;
        char *slash;

        *n = (agent_net_t){};
        if (cmdline_get(cmdline, "husk.ip", &ip) < 0)
                return -ENOENT;
        slash = strchr(ip, '/');
        if (!slash)
                return -EINVAL;
        *slash = '\0';
        if (parse_addr(ip, &n->addr) < 0 || parse_u64(slash + 1, &prefix) < 0 || prefix < 1 || prefix > 32)
                return -EINVAL;
        n->prefix = (unsigned)prefix;
        if (cmdline_get(cmdline, "husk.gw", &gw) >= 0 && parse_addr(gw, &n->gateway) < 0)
                return -EINVAL;
        if (cmdline_get(cmdline, "husk.dns", &dns) >= 0 && parse_addr(dns, &n->dns) < 0)
                return -EINVAL;
        n->configured = true;
        return 0;
}

static void set_sin(struct sockaddr *sa, uint32_t addr) {
        struct sockaddr_in *sin = (struct sockaddr_in *)sa;

        memset(sin, 0, sizeof(*sin));
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = addr;
}

static int link_up(int fd, const char *name) {
        struct ifreq ifr = {};

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return -errno;
        return 0;
}

int agent_net_configure(const agent_net_t *n) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};
        int r;

        if (fd < 0)
                return -errno;
        (void)link_up(fd, "lo");
        if (!n->configured)
                return 0;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), IFACE);
        set_sin(&ifr.ifr_addr, n->addr);
        if (ioctl(fd, SIOCSIFADDR, &ifr) < 0)
                return -errno;
        set_sin(&ifr.ifr_netmask, n->prefix == 32 ? 0xffffffffu : htonl(~(0xffffffffu >> n->prefix)));
        if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0)
                return -errno;
        r = link_up(fd, IFACE);
        if (r < 0)
                return r;
        if (n->gateway) {
                struct rtentry rt = { .rt_flags = RTF_UP | RTF_GATEWAY, .rt_dev = (char *)IFACE };

                set_sin(&rt.rt_dst, 0);
                set_sin(&rt.rt_genmask, 0);
                set_sin(&rt.rt_gateway, n->gateway);
                if (ioctl(fd, SIOCADDRT, &rt) < 0 && errno != EEXIST)
                        return -errno;
        }
        return 0;
}

int agent_net_write_resolv_conf(const agent_net_t *n) {
        char text[64], addr[INET_ADDRSTRLEN];
        _cleanup_close_ int fd = -1;
        int len;

        if (!n->dns)
                return 0;
        inet_ntop(AF_INET, &n->dns, addr, sizeof(addr));
        len = snprintf(text, sizeof(text), "nameserver %s\n", addr);
        (void)mkdir("/etc", 0755);
        /* A symlink into a read-only place (systemd-resolved's) would make the write fail. */
        (void)unlink("/etc/resolv.conf");
        fd = open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        if (write(fd, text, (size_t)len) != len)
                return -EIO;
        return 0;
}
