/* apiserver_relay.c: connections apiserver accepts itself, relayed to civetweb's internal
 * listener (apiserver_relay.h says why, and why their origins cannot be forged). */
#include "services/apiserver/apiserver_relay.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define RELAY_BUF 16384
#define RELAY_STACK_SIZE (256u * 1024u)

struct relay_slot {
        bool used;
        uint16_t port; /* the relay's source port towards the internal listener */
        relay_origin_t origin;
};

struct relay_server {
        const relay_listener_ops_t *ops;
        void *userdata;
        int listen_fd;
        int stop_pipe[2];
        uint16_t internal_port;
        pthread_t acceptor;
        bool acceptor_started;
        pthread_mutex_t lock;
        pthread_cond_t idle; /* signalled when a relay ends */
        unsigned relays;     /* running relay threads */
        bool stopping;
        unsigned max_connections;
        struct relay_slot *slots; /* max_connections of them */
};

typedef struct relay {
        relay_server_t *server;
        int client; /* the accepted connection, until ops->open wraps it */
} relay_t;

/* ---- the plain stream -------------------------------------------------------------------- */

static ssize_t plain_recv(relay_stream_t *s, void *buf, size_t n) {
        ssize_t k = recv(s->fd, buf, n, MSG_DONTWAIT);

        if (k < 0)
                return errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
        return k;
}

static int plain_send_all(relay_stream_t *s, const void *buf, size_t n) {
        for (size_t off = 0; off < n;) {
                struct pollfd p = { .fd = s->fd, .events = POLLOUT };
                ssize_t w = send(s->fd, (const char *)buf + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (w >= 0) {
                        off += (size_t)w;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EWOULDBLOCK)
                        return -errno;
                if (poll(&p, 1, RELAY_SEND_TIMEOUT_MS) == 0)
                        return -ETIMEDOUT;
        }
        return 0;
}

static bool plain_pending(relay_stream_t *s) {
        (void)s;
        return false;
}

static void plain_shutdown_write(relay_stream_t *s) { (void)shutdown(s->fd, SHUT_WR); }

static void plain_free(relay_stream_t *s) {
        close(s->fd);
        free(s);
}

static const relay_stream_ops_t plain_ops = {
        .recv = plain_recv,
        .send_all = plain_send_all,
        .pending = plain_pending,
        .shutdown_write = plain_shutdown_write,
        .free = plain_free,
};

int relay_stream_plain(int fd, relay_stream_t **ret) {
        relay_stream_t *s = malloc(sizeof(*s));

        if (!s) {
                close(fd);
                return -ENOMEM;
        }
        *s = (relay_stream_t){ .ops = &plain_ops, .fd = fd };
        *ret = s;
        return 0;
}

/* ---- refusing ---------------------------------------------------------------------------- */

/* Up to timeout_ms for input on fd, then whatever of it is there (discarded). */
static void drain(int fd, int timeout_ms) {
        uint64_t deadline = now_monotonic_ms() + (uint64_t)timeout_ms;
        char buf[4096];

        for (;;) {
                uint64_t now = now_monotonic_ms();
                struct pollfd p = { .fd = fd, .events = POLLIN };

                if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0)
                        return;
                if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
                        return;
        }
}

void relay_refuse(int fd, int status, const char *title, const char *detail) {
        char body[512], buf[1024];
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n;

        /* The request is read first and the rest drained after: a client still writing its
         * request to a socket we closed would see EPIPE instead of the answer. */
        if (poll(&p, 1, 1000) > 0)
                (void)recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

        snprintf(body, sizeof(body),
                 "{\"type\":\"urn:husk:problem:%s\",\"title\":\"%s\",\"status\":%d,\"detail\":\"%s\"}",
                 status == 403   ? "forbidden"
                 : status == 400 ? "bad-request"
                                 : "unavailable",
                 title, status, detail);
        n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\nCache-Control: no-store\r\n\r\n%s",
                     status, title, strlen(body), body);
        /* Best effort and never blocking for long: the peer may not read at all. */
        (void)send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)shutdown(fd, SHUT_WR);
        drain(fd, 1000);
}

/* ---- origins ----------------------------------------------------------------------------- */

int relay_server_origin(relay_server_t *s, const struct mg_request_info *info, relay_origin_t *ret) {
        int r = -ENOENT;

        if (!s || info->server_port != s->internal_port || !streq(info->remote_addr, "127.0.0.1"))
                return -ENOENT;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->max_connections; i++)
                if (s->slots[i].used && s->slots[i].port == info->remote_port) {
                        *ret = s->slots[i].origin;
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&s->lock);
        return r;
}

static int slot_add(relay_server_t *s, uint16_t port, const relay_origin_t *origin) {
        int r = -EBUSY;

        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->max_connections; i++)
                if (!s->slots[i].used) {
                        s->slots[i] = (struct relay_slot){ .used = true, .port = port, .origin = *origin };
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&s->lock);
        return r;
}

static void slot_remove(relay_server_t *s, uint16_t port) {
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->max_connections; i++)
                if (s->slots[i].used && s->slots[i].port == port)
                        s->slots[i] = (struct relay_slot){};
        pthread_mutex_unlock(&s->lock);
}

/* A TCP socket on 127.0.0.1 bound to an ephemeral port, connected to the internal listener
 * only after its port is registered with origin. */
static int upstream_connect(relay_server_t *s, const relay_origin_t *origin, uint16_t *ret_port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1, r;

        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
                return -errno;
        *ret_port = ntohs(a.sin_port);
        r = slot_add(s, *ret_port, origin);
        if (r < 0)
                return r;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        a.sin_port = htons(s->internal_port);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                r = -errno;
                slot_remove(s, *ret_port);
                return r;
        }
        return TAKE_FD(fd);
}

/* ---- relaying ---------------------------------------------------------------------------- */

/* Client to upstream: what the client stream has. 1: moved some (or none was ready), 0: end
 * of stream, -errno. */
static ssize_t pump_up(relay_stream_t *client, int upstream) {
        char buf[RELAY_BUF];
        ssize_t n = client->ops->recv(client, buf, sizeof(buf));

        if (n == -EAGAIN)
                return 1;
        if (n <= 0)
                return n;
        for (ssize_t off = 0; off < n;) {
                ssize_t w = send(upstream, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += w;
        }
        return 1;
}

/* Upstream to client, likewise. */
static ssize_t pump_down(int upstream, relay_stream_t *client) {
        char buf[RELAY_BUF];
        ssize_t n = recv(upstream, buf, sizeof(buf), MSG_DONTWAIT);
        int r;

        if (n < 0)
                return errno == EWOULDBLOCK || errno == EINTR ? 1 : -errno;
        if (n == 0)
                return 0;
        r = client->ops->send_all(client, buf, (size_t)n);
        return r < 0 ? r : 1;
}

/* Both directions until both ended: a half-close is passed on (a client may shut down its
 * sending side and still read the answer). */
static void relay_pump(relay_server_t *s, relay_stream_t *client, int upstream) {
        bool client_open = true, upstream_open = true;

        while (client_open || upstream_open) {
                bool buffered = client_open && client->ops->pending(client);
                struct pollfd p[2] = {
                        { .fd = client_open ? client->fd : -1, .events = POLLIN },
                        { .fd = upstream_open ? upstream : -1, .events = POLLIN },
                };
                int n = poll(p, 2, buffered ? 0 : 1000);

                if (n < 0 && errno != EINTR)
                        return;
                if (__atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST) && n == 0 && !buffered)
                        return;
                if (p[0].revents || buffered) {
                        ssize_t k = pump_up(client, upstream);
                        if (k < 0)
                                return;
                        if (k == 0) {
                                client_open = false;
                                (void)shutdown(upstream, SHUT_WR);
                        }
                }
                if (p[1].revents) {
                        ssize_t k = pump_down(upstream, client);
                        if (k < 0)
                                return;
                        if (k == 0) {
                                upstream_open = false;
                                client->ops->shutdown_write(client);
                        }
                }
        }
}

static void *relay_run(void *userdata) {
        relay_t *rl = userdata;
        relay_server_t *s = rl->server;
        relay_stream_t *client = NULL;
        relay_origin_t origin = {};
        _cleanup_close_ int upstream = -1;
        uint16_t port = 0;
        int r;

        r = s->ops->open(s->userdata, rl->client, &client, &origin);
        if (r >= 0) {
                upstream = upstream_connect(s, &origin, &port);
                if (upstream < 0) {
                        log_warning_errno(upstream, "%s: cannot reach the internal listener: %m", s->ops->name);
                        port = 0;
                } else
                        relay_pump(s, client, upstream);
        }
        /* Unregistered before the port is released, so that it never names someone else. */
        if (port)
                slot_remove(s, port);
        if (client)
                client->ops->free(client);
        free(rl);
        pthread_mutex_lock(&s->lock);
        s->relays--;
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

static void admit(relay_server_t *s, int fd) {
        _cleanup_close_ int client = fd;
        pthread_attr_t attr;
        pthread_t thread;
        relay_t *rl;
        int r;

        pthread_mutex_lock(&s->lock);
        if (s->relays >= s->max_connections) {
                static const char busy[] =
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

                pthread_mutex_unlock(&s->lock);
                /* No waiting for the request here: this thread accepts for everyone. (A TLS
                 * client reads this as a failed handshake, which is as clear as it can get.) */
                (void)send(client, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                return;
        }
        s->relays++;
        pthread_mutex_unlock(&s->lock);

        rl = malloc(sizeof(*rl));
        r = rl ? 0 : ENOMEM;
        if (rl) {
                *rl = (relay_t){ .server = s, .client = client };
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                /* Two relay buffers and OpenSSL's calls: far below the default 8 MiB, and
                 * hundreds of TLS clients at once should not reserve gigabytes. */
                pthread_attr_setstacksize(&attr, RELAY_STACK_SIZE);
                r = pthread_create(&thread, &attr, relay_run, rl);
                pthread_attr_destroy(&attr);
        }
        if (r != 0) {
                free(rl);
                pthread_mutex_lock(&s->lock);
                s->relays--;
                pthread_mutex_unlock(&s->lock);
                log_warning_errno(r, "%s: cannot start a relay: %m", s->ops->name);
                return;
        }
        TAKE_FD(client); /* the relay owns it */
}

static void *accept_run(void *userdata) {
        relay_server_t *s = userdata;

        for (;;) {
                struct pollfd p[2] = { { .fd = s->listen_fd, .events = POLLIN },
                                       { .fd = s->stop_pipe[0], .events = POLLIN } };
                int fd;

                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        break;
                if (p[1].revents)
                        break;
                if (!p[0].revents)
                        continue;
                fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                        admit(s, fd);
        }
        return NULL;
}

int relay_server_start(int listen_fd, uint16_t internal_port, unsigned max_connections, const relay_listener_ops_t *ops,
                       void *userdata, relay_server_t **ret) {
        _cleanup_(relay_server_freep) relay_server_t *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s) {
                close(listen_fd);
                return -ENOMEM;
        }
        s->slots = calloc(max_connections, sizeof(*s->slots));
        if (!s->slots) {
                free(s);
                close(listen_fd);
                return -ENOMEM;
        }
        s->max_connections = max_connections;
        s->ops = ops;
        s->userdata = userdata;
        s->listen_fd = listen_fd;
        s->stop_pipe[0] = s->stop_pipe[1] = -1;
        s->internal_port = internal_port;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->idle, NULL);
        if (pipe2(s->stop_pipe, O_CLOEXEC) < 0)
                return -errno;
        r = -pthread_create(&s->acceptor, NULL, accept_run, s);
        if (r < 0)
                return r;
        s->acceptor_started = true;
        *ret = TAKE_PTR(s);
        return 0;
}

void relay_server_free(relay_server_t *s) {
        if (!s)
                return;
        __atomic_store_n(&s->stopping, true, __ATOMIC_SEQ_CST);
        if (s->acceptor_started) {
                if (write(s->stop_pipe[1], "x", 1) < 0)
                        log_debug_errno(errno, "Waking the %s's thread failed: %m", s->ops->name);
                pthread_join(s->acceptor, NULL);
        }
        /* Relays end within a poll interval of `stopping` (their civetweb side is gone too). */
        pthread_mutex_lock(&s->lock);
        while (s->relays > 0)
                pthread_cond_wait(&s->idle, &s->lock);
        pthread_mutex_unlock(&s->lock);
        if (s->listen_fd >= 0)
                close(s->listen_fd);
        if (s->stop_pipe[0] >= 0)
                close(s->stop_pipe[0]);
        if (s->stop_pipe[1] >= 0)
                close(s->stop_pipe[1]);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->idle);
        free(s->slots);
        free(s);
}
