/* netd_tap.c: instance TAPs (created, or a pool clone's taken over; found, deleted) and the sysctls they need. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/netd/netd.h"

int netd_sysctl_write(const char *path, const char *value) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        size_t n = strlen(value);

        if (fd < 0)
                return -errno;
        if (write(fd, value, n) != (ssize_t)n)
                return -errno;
        return 0;
}

static int set_addr(int sock, const char *name, unsigned long req, uint32_t host_order) {
        struct ifreq ifr = {};
        struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(host_order);
        return ioctl(sock, req, &ifr) < 0 ? -errno : 0;
}

/* What every instance TAP gets, new or taken over: address host/30, up, route_localnet off. */
static int tap_configure(int sock, const char *name, uint32_t host_addr) {
        struct ifreq ifr = {};
        int r;

        r = set_addr(sock, name, SIOCSIFADDR, host_addr);
        if (r >= 0)
                r = set_addr(sock, name, SIOCSIFNETMASK, 0xfffffffcu);
        if (r < 0)
                return r;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
                return -errno;
        /* Off until a port on 127.0.0.1 needs it: a TAP taken over may still have it on. */
        return netd_tap_set_localnet(name, false);
}

int netd_tap_create(const char *name, uint32_t host_addr) {
        _cleanup_close_ int tun = -1, sock = -1;
        struct ifreq ifr = {};

        if (strlen(name) >= IFNAMSIZ)
                return -ENAMETOOLONG;
        tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (tun < 0)
                return -errno;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        /* QEMU opens it again by name with the same flags (tap,ifname=,script=no). */
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        if (ioctl(tun, TUNSETIFF, &ifr) < 0)
                return -errno;
        /* Persistent: the device outlives this fd, netd and QEMU restarts alike. */
        if (ioctl(tun, TUNSETPERSIST, 1) < 0)
                return -errno;

        sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
                return -errno;
        return tap_configure(sock, name, host_addr);
}

bool netd_pool_tap_name_valid(const char *name) {
        /* The same 12 lowercase hex digits as an instance id, behind another prefix: no pool TAP
         * is ever mistaken for an instance's (netd_tap_list) and each fits IFNAMSIZ. */
        return name && strncmp(name, NETD_POOL_TAP_PREFIX, strlen(NETD_POOL_TAP_PREFIX)) == 0 &&
               instance_id_valid(name + strlen(NETD_POOL_TAP_PREFIX));
}

/* A sysfs attribute printed as "0x%x\n" (flags, tun_flags). */
static int read_sysfs_hex(const char *sysfs_net, const char *dev, const char *attr, unsigned long *ret) {
        _cleanup_free_ char *text = NULL;
        char path[256], *end;
        int r;

        snprintf(path, sizeof(path), "%s/%s/%s", sysfs_net, dev, attr);
        r = read_file(path, 64, &text, NULL);
        if (r < 0)
                return r;
        errno = 0;
        *ret = strtoul(text, &end, 16);
        if (errno != 0 || end == text || (*end != '\0' && *end != '\n'))
                return -EBADMSG;
        return 0;
}

int netd_pool_tap_check(const char *sysfs_net, const char *name, char *ret_error, size_t error_size) {
        unsigned long tun_flags, flags;
        int r;

        r = read_sysfs_hex(sysfs_net, name, "flags", &flags);
        if (r == -ENOENT) {
                snprintf(ret_error, error_size, "tap: no network device %s", name);
                return -EINVAL;
        }
        if (r < 0) {
                snprintf(ret_error, error_size, "tap: cannot read the flags of %s: %s", name, strerror(-r));
                return -EINVAL;
        }
        /* Only the kernel's tun driver gives a device tun_flags; a veth or a dummy has none. */
        r = read_sysfs_hex(sysfs_net, name, "tun_flags", &tun_flags);
        if (r < 0 || !(tun_flags & IFF_TAP)) {
                snprintf(ret_error, error_size, "tap: %s is not a TAP device", name);
                return -EINVAL;
        }
        /* A pool clone's TAP is as QEMU made it, down; one that is up is in use (and cannot be renamed). */
        if (flags & IFF_UP) {
                snprintf(ret_error, error_size, "tap: %s is up, not a pool clone's TAP", name);
                return -EINVAL;
        }
        return 0;
}

int netd_tap_take(const char *pool_tap, const char *name, uint32_t host_addr) {
        _cleanup_close_ int sock = -1;
        struct ifreq ifr = {};

        if (strlen(pool_tap) >= IFNAMSIZ || strlen(name) >= IFNAMSIZ)
                return -ENAMETOOLONG;
        sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
                return -errno;
        /* SIOCSIFNAME needs the device down; QEMU's fd stays attached to it under its new name. */
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", pool_tap);
        snprintf(ifr.ifr_newname, sizeof(ifr.ifr_newname), "%s", name);
        if (ioctl(sock, SIOCSIFNAME, &ifr) < 0)
                return -errno;
        return tap_configure(sock, name, host_addr);
}

int netd_tap_set_localnet(const char *name, bool on) {
        char path[128];

        snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/route_localnet", name);
        return netd_sysctl_write(path, on ? "1" : "0");
}

/* RTM_DELLINK: works while QEMU still holds the device, unlike TUNSETPERSIST 0. */
int netd_tap_delete(const char *name) {
        struct {
                struct nlmsghdr nh;
                struct ifinfomsg ifi;
        } req = {
                .nh = { .nlmsg_len = sizeof(req),
                        .nlmsg_type = RTM_DELLINK,
                        .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK,
                        .nlmsg_seq = 1 },
                .ifi = { .ifi_family = AF_UNSPEC },
        };
        struct {
                struct nlmsghdr nh;
                struct nlmsgerr err;
        } ack;
        _cleanup_close_ int fd = -1;
        unsigned idx = if_nametoindex(name);
        ssize_t n;

        if (idx == 0)
                return errno == ENODEV ? 0 : -errno;
        req.ifi.ifi_index = (int)idx;
        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
                return -errno;
        if (send(fd, &req, sizeof(req), 0) < 0)
                return -errno;
        n = recv(fd, &ack, sizeof(ack), 0);
        if (n < 0)
                return -errno;
        if ((size_t)n >= sizeof(struct nlmsghdr) + sizeof(int) && ack.nh.nlmsg_type == NLMSG_ERROR &&
            ack.err.error != 0 && ack.err.error != -ENODEV)
                return ack.err.error;
        return 0;
}

int netd_tap_address(const char *name, uint32_t *ret) {
        _cleanup_close_ int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};

        if (sock < 0)
                return -errno;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(sock, SIOCGIFADDR, &ifr) < 0)
                return -errno;
        *ret = ntohl(((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr);
        return 0;
}

static void strv_free(char **v) {
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

int netd_tap_list(char ***ret) {
        DIR *d = opendir(NETD_SYSFS_NET);
        char **v = NULL;
        size_t n = 0;
        struct dirent *e;

        if (!d)
                return -errno;
        v = calloc(1, sizeof(char *));
        if (!v) {
                closedir(d);
                return -ENOMEM;
        }
        while ((e = readdir(d))) {
                const char *id = e->d_name + strlen(NETD_TAP_PREFIX);
                char **nv;

                /* hk + 12 lowercase hex digits is netd's name space: whatever carries such a
                 * name is an instance's link (a TAP, or a veth standing in for a guest). */
                if (strncmp(e->d_name, NETD_TAP_PREFIX, strlen(NETD_TAP_PREFIX)) != 0 || !instance_id_valid(id))
                        continue;
                nv = realloc(v, (n + 2) * sizeof(char *));
                if (!nv || !(nv[n] = strdup(e->d_name))) {
                        v = nv ?: v;
                        strv_free(v);
                        closedir(d);
                        return -ENOMEM;
                }
                v = nv;
                v[++n] = NULL;
        }
        closedir(d);
        *ret = v;
        return (int)n;
}
