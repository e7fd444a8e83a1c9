/* oci_net.c: the VM's NIC in the container's network namespace: TAP + tc mirred redirects to and from the veth, the veth's IPv4 address, prefix, MAC and default gateway for the guest. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/oci/oci_net.h"

#define TAP_NAME "husktap0"
#define TC "/usr/sbin/tc"

extern char **environ;

/* tc with these arguments, waited for; 0 on exit status 0. */
static int tc(char *const *argv) {
        pid_t pid;
        int status;

        if (posix_spawn(&pid, TC, NULL, NULL, argv, environ) != 0)
                return -errno;
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Every frame arriving on from leaves through to. */
static int redirect(const char *from, const char *to) {
        char *qdisc[] = { TC, "qdisc", "add", "dev", (char *)from, "ingress", NULL };
        char *filter[] = { TC,         "filter", "add",    "dev",      (char *)from, "parent",   "ffff:",
                           "protocol", "all",    "u32",    "match",    "u32",        "0",        "0",
                           "action",   "mirred", "egress", "redirect", "dev",        (char *)to, NULL };
        int r = tc(qdisc);

        return r < 0 ? r : tc(filter);
}

static int tap_make(const char *name, bool persist) {
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
        _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, persist ? 1 : 0) < 0)
                return -errno;
        return 0;
}

static int link_up(const char *name) {
        struct ifreq ifr = {};
        _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP;
        return ioctl(s, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

static int link_mac(const char *name, char *buf, size_t size) {
        struct ifreq ifr = {};
        _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const unsigned char *m;

        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (s < 0 || ioctl(s, SIOCGIFHWADDR, &ifr) < 0)
                return -errno;
        m = (const unsigned char *)ifr.ifr_hwaddr.sa_data;
        snprintf(buf, size, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
        return 0;
}

/* The default route's gateway through dev, from this namespace's /proc/net/route; "" if none. */
static void default_gateway(const char *dev, char *buf, size_t size) {
        FILE *f = fopen("/proc/self/net/route", "re");
        char line[256], ifname[64];
        unsigned dst, gw, flags;

        buf[0] = '\0';
        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%63s %x %x %x", ifname, &dst, &gw, &flags) == 4 && dst == 0 && gw != 0 &&
                    streq(ifname, dev)) {
                        struct in_addr a = { .s_addr = gw };

                        inet_ntop(AF_INET, &a, buf, (socklen_t)size);
                        break;
                }
        fclose(f);
}

int oci_net_attach(const char *path, oci_net_t *ret, char **ret_error) {
        struct ifaddrs *ifs = NULL;
        oci_net_t n = {};
        int fd, r;

        *ret = (oci_net_t){};
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return error_set(ret_error, -errno, "linux.namespaces: network %s: %m", path);
        r = setns(fd, CLONE_NEWNET);
        close(fd);
        if (r < 0)
                return error_set(ret_error, -errno, "linux.namespaces: cannot enter network %s: %m", path);
        if (getifaddrs(&ifs) < 0)
                return error_set(ret_error, -errno, "network %s: cannot list its interfaces: %m", path);
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
                const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
                const struct sockaddr_in *m = (const struct sockaddr_in *)i->ifa_netmask;

                if (!a || a->sin_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) || !m ||
                    strlen(i->ifa_name) >= sizeof(n.veth))
                        continue;
                snprintf(n.veth, sizeof(n.veth), "%s", i->ifa_name);
                inet_ntop(AF_INET, &a->sin_addr, n.vm.guest_ip, sizeof(n.vm.guest_ip));
                n.vm.prefix = (unsigned)__builtin_popcount(m->sin_addr.s_addr);
                break;
        }
        freeifaddrs(ifs);
        if (!n.veth[0])
                return 0; /* only loopback: the VM gets no NIC, as `--network none` */
        r = link_mac(n.veth, n.vm.mac, sizeof(n.vm.mac));
        if (r < 0)
                return error_set(ret_error, r, "network %s: %s: cannot read its MAC address", path, n.veth);
        default_gateway(n.veth, n.vm.host_ip, sizeof(n.vm.host_ip));
        snprintf(n.vm.tap, sizeof(n.vm.tap), TAP_NAME);
        r = tap_make(n.vm.tap, true);
        if (r < 0)
                return error_set(ret_error, r, "network %s: cannot make the VM's TAP: %s", path, strerror(-r));
        n.attached = true;
        if ((r = link_up(n.vm.tap)) < 0 || (r = redirect(n.veth, n.vm.tap)) < 0 ||
            (r = redirect(n.vm.tap, n.veth)) < 0) {
                oci_net_detach(&n);
                return error_set(ret_error, r, "network %s: cannot connect the VM's TAP to %s (tc mirred)", path,
                                 n.veth);
        }
        n.vm.attached = true;
        *ret = n;
        return 0;
}

void oci_net_detach(oci_net_t *n) {
        char *del[] = { TC, "qdisc", "del", "dev", n->veth, "ingress", NULL };

        if (!n->attached)
                return;
        (void)tc(del);
        (void)tap_make(n->vm.tap, false); /* not persistent any more: gone once QEMU closed it */
        n->attached = false;
}
