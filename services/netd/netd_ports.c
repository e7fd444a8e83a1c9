/* netd_ports.c: published ports on the host side: validation and the socket that holds each one. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/netd/netd.h"

int netd_ports_check(const port_spec_t *ports, size_t n, char *ret_error, size_t size) {
        if (n > PORTS_MAX) {
                snprintf(ret_error, size, "ports: at most %d entries", PORTS_MAX);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < i; j++)
                        if (ports[i].published == ports[j].published && ports[i].protocol == ports[j].protocol) {
                                snprintf(ret_error, size, "ports[%zu].published: %u/%s is already ports[%zu]", i,
                                         ports[i].published, port_protocol_to_string(ports[i].protocol), j);
                                return -EINVAL;
                        }
        return 0;
}

/* The host's own connections to 127.0.0.1:published are DNATed in the output hook and leave
 * through the TAP with their loopback source (masqueraded only later, in postrouting): the
 * kernel routes such a packet out of a device other than lo, and lets the answer in once
 * un-NATed back to 127.0.0.1, only with route_localnet on that device. The guard chain of
 * netd_nft.c drops every packet a guest itself sends with a loopback address, so the flag
 * serves that return path and nothing else. */
bool netd_ports_need_localnet(const port_spec_t *ports, size_t n) {
        for (size_t k = 0; k < n; k++) {
                const char *ip = ports[k].host_ip;

                if (!ip[0] || streq(ip, "0.0.0.0") || strncmp(ip, "127.", 4) == 0)
                        return true;
        }
        return false;
}

/* Binding is the conflict check Ring does, and keeping the socket bound is what keeps another
 * program from taking the port later: nft DNAT never needs a socket, so without it nothing
 * would stop a second listener that then silently never sees a packet. */
int netd_port_reserve(const port_spec_t *p, bool listen_too) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p->published) };
        bool tcp = p->protocol == PORT_TCP;
        _cleanup_close_ int fd = -1;
        int one = 1;

        if (p->host_ip[0] && inet_pton(AF_INET, p->host_ip, &sa.sin_addr) != 1)
                return -EINVAL;
        fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* TIME_WAIT leftovers must not count as taken; a live listener still does. */
        if (tcp && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        /* Listening, even when nft forwards (and no packet ever reaches it): a bound socket that
         * does not listen does not keep an SO_REUSEADDR listener off the port. */
        if (tcp && listen(fd, listen_too ? 1024 : 1) < 0)
                return -errno;
        return TAKE_FD(fd);
}
