/* netd_proxy.c: the userspace forwarder (forwarder: proxy, or auto without nftables): one epoll thread
 * for every published port, splice(2) through a pipe per direction for tcp, a socket per client
 * for udp. No process per port, no copy through userspace for tcp. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/netd/netd.h"

#define TAG_MAX 16
#define PIPE_CHUNK (1 << 16)
#define UDP_SESSIONS_MAX 1024 /* per port: a client cannot make us open unbounded sockets */
#define UDP_IDLE_MS 60000
#define UDP_DGRAM_MAX 65536

typedef enum kind { K_WAKE, K_LISTEN, K_CONN, K_UDP_SESSION } kind_t;

typedef struct handle {
        kind_t kind;
        void *obj;
        int side; /* K_CONN: 0 client, 1 upstream */
} handle_t;

typedef struct listener {
        handle_t h;
        char tag[TAG_MAX];
        int fd;
        port_protocol_t proto;
        struct sockaddr_in guest;
        struct listener *next;
} listener_t;

typedef struct conn {
        handle_t h[2];
        char tag[TAG_MAX];
        int fd[2];
        int pipe[2][2]; /* direction d: from fd[d] to fd[1-d] */
        size_t pending[2];
        bool eof[2], shut[2], connecting;
        bool dead;        /* closed in this epoll batch; freed after it */
        uint32_t mask[2]; /* epoll interest currently registered */
        struct conn *prev, *next;
} conn_t;

typedef struct udp_session {
        handle_t h;
        listener_t *l;
        int fd; /* connected to the guest */
        struct sockaddr_in client;
        uint64_t last_ms;
        struct udp_session *prev, *next;
} udp_session_t;

typedef struct op {
        bool add;
        char tag[TAG_MAX];
        listener_t *l; /* add */
        bool done;
        int result;
        struct op *next;
} op_t;

struct netd_proxy {
        int epfd, wakefd;
        handle_t wake;
        pthread_t thread;
        bool stop;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        op_t *ops;
        listener_t *listeners;
        conn_t *conns;
        conn_t *dead; /* linked through next */
        udp_session_t *sessions;
        uint8_t dgram[UDP_DGRAM_MAX];
};

static uint64_t now_ms(void) { return now_monotonic_ms(); }

/* Later events of the same epoll batch may still point at c: it is only freed after it. */
static void conn_close(netd_proxy_t *p, conn_t *c) {
        if (c->dead)
                return;
        for (int s = 0; s < 2; s++) {
                if (c->fd[s] >= 0)
                        close(c->fd[s]); /* also leaves the epoll set */
                for (int k = 0; k < 2; k++)
                        if (c->pipe[s][k] >= 0)
                                close(c->pipe[s][k]);
        }
        if (c->prev)
                c->prev->next = c->next;
        else
                p->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->dead = true;
        c->next = p->dead;
        p->dead = c;
}

static void free_dead(netd_proxy_t *p) {
        while (p->dead) {
                conn_t *c = p->dead;
                p->dead = c->next;
                free(c);
        }
}

static void session_close(netd_proxy_t *p, udp_session_t *u) {
        close(u->fd);
        if (u->prev)
                u->prev->next = u->next;
        else
                p->sessions = u->next;
        if (u->next)
                u->next->prev = u->prev;
        free(u);
}

static int set_mask(netd_proxy_t *p, conn_t *c, int side, uint32_t mask) {
        struct epoll_event ev = { .events = mask, .data.ptr = &c->h[side] };

        if (mask == c->mask[side])
                return 0;
        if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, c->fd[side], &ev) < 0)
                return -errno;
        c->mask[side] = mask;
        return 0;
}

/* Move what can move in direction d. Returns <0 when the connection is dead. */
static int pump(conn_t *c, int d) {
        for (;;) {
                ssize_t n;

                if (c->pending[d] > 0) {
                        n = splice(c->pipe[d][0], NULL, c->fd[1 - d], NULL, c->pending[d],
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                        if (n < 0)
                                return errno == EAGAIN ? 0 : -errno;
                        c->pending[d] -= (size_t)n;
                        continue;
                }
                if (c->eof[d]) {
                        if (!c->shut[d]) {
                                shutdown(c->fd[1 - d], SHUT_WR);
                                c->shut[d] = true;
                        }
                        return 0;
                }
                n = splice(c->fd[d], NULL, c->pipe[d][1], NULL, PIPE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n == 0)
                        c->eof[d] = true;
                else if (n < 0)
                        return errno == EAGAIN ? 0 : -errno;
                else
                        c->pending[d] += (size_t)n;
        }
}

static void conn_service(netd_proxy_t *p, conn_t *c) {
        if (pump(c, 0) < 0 || pump(c, 1) < 0 || (c->shut[0] && c->shut[1])) {
                conn_close(p, c);
                return;
        }
        /* Read a side only while its pipe is empty; wait for writability only with data queued. */
        for (int s = 0; s < 2; s++) {
                uint32_t m = (!c->eof[s] && c->pending[s] == 0 ? EPOLLIN : 0) | (c->pending[1 - s] ? EPOLLOUT : 0);
                if (set_mask(p, c, s, m) < 0) {
                        conn_close(p, c);
                        return;
                }
        }
}

static void on_accept(netd_proxy_t *p, listener_t *l) {
        for (int k = 0; k < 64; k++) {
                int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
                struct epoll_event ev;
                conn_t *c;

                if (cfd < 0)
                        return;
                c = calloc(1, sizeof(*c));
                if (!c) {
                        close(cfd);
                        return;
                }
                memset(c->pipe, -1, sizeof(c->pipe));
                c->fd[0] = cfd;
                c->fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                snprintf(c->tag, sizeof(c->tag), "%s", l->tag);
                c->next = p->conns;
                if (p->conns)
                        p->conns->prev = c;
                p->conns = c;
                if (c->fd[1] < 0 || pipe2(c->pipe[0], O_NONBLOCK | O_CLOEXEC) < 0 ||
                    pipe2(c->pipe[1], O_NONBLOCK | O_CLOEXEC) < 0) {
                        conn_close(p, c);
                        continue;
                }
                setsockopt(c->fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                setsockopt(c->fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                for (int s = 0; s < 2; s++)
                        c->h[s] = (handle_t){ .kind = K_CONN, .obj = c, .side = s };
                if (connect(c->fd[1], (struct sockaddr *)&l->guest, sizeof(l->guest)) < 0 && errno != EINPROGRESS) {
                        conn_close(p, c);
                        continue;
                }
                c->connecting = true;
                /* The client is not read until the guest side is connected. */
                c->mask[0] = 0;
                c->mask[1] = EPOLLOUT;
                ev = (struct epoll_event){ .events = 0, .data.ptr = &c->h[0] };
                if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, c->fd[0], &ev) < 0) {
                        conn_close(p, c);
                        continue;
                }
                ev = (struct epoll_event){ .events = EPOLLOUT, .data.ptr = &c->h[1] };
                if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, c->fd[1], &ev) < 0)
                        conn_close(p, c);
        }
}

static void on_conn(netd_proxy_t *p, conn_t *c, int side, uint32_t events) {
        if (c->dead)
                return;
        if (c->connecting) {
                int err = 0;
                socklen_t len = sizeof(err);

                if (side != 1)
                        return;
                if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
                        conn_close(p, c);
                        return;
                }
                c->connecting = false;
        }
        conn_service(p, c);
}

static udp_session_t *session_for(netd_proxy_t *p, listener_t *l, const struct sockaddr_in *client) {
        struct epoll_event ev;
        udp_session_t *u;
        size_t n = 0;

        for (u = p->sessions; u; u = u->next)
                if (u->l == l) {
                        if (u->client.sin_addr.s_addr == client->sin_addr.s_addr &&
                            u->client.sin_port == client->sin_port)
                                return u;
                        n++;
                }
        if (n >= UDP_SESSIONS_MAX)
                return NULL;
        u = calloc(1, sizeof(*u));
        if (!u)
                return NULL;
        u->l = l;
        u->client = *client;
        u->h = (handle_t){ .kind = K_UDP_SESSION, .obj = u };
        u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &u->h };
        if (u->fd < 0 || connect(u->fd, (struct sockaddr *)&l->guest, sizeof(l->guest)) < 0 ||
            epoll_ctl(p->epfd, EPOLL_CTL_ADD, u->fd, &ev) < 0) {
                if (u->fd >= 0)
                        close(u->fd);
                free(u);
                return NULL;
        }
        u->next = p->sessions;
        if (p->sessions)
                p->sessions->prev = u;
        p->sessions = u;
        return u;
}

static void on_udp_listener(netd_proxy_t *p, listener_t *l) {
        for (int k = 0; k < 64; k++) {
                struct sockaddr_in client;
                socklen_t len = sizeof(client);
                ssize_t n = recvfrom(l->fd, p->dgram, sizeof(p->dgram), 0, (struct sockaddr *)&client, &len);
                udp_session_t *u;

                if (n < 0)
                        return;
                u = session_for(p, l, &client);
                if (!u)
                        continue;
                u->last_ms = now_ms();
                (void)send(u->fd, p->dgram, (size_t)n, 0);
        }
}

static void on_udp_session(netd_proxy_t *p, udp_session_t *u) {
        for (int k = 0; k < 64; k++) {
                ssize_t n = recv(u->fd, p->dgram, sizeof(p->dgram), 0);

                if (n < 0)
                        return;
                u->last_ms = now_ms();
                (void)sendto(u->l->fd, p->dgram, (size_t)n, 0, (struct sockaddr *)&u->client, sizeof(u->client));
        }
}

static void sweep_udp(netd_proxy_t *p) {
        uint64_t now = now_ms();

        for (udp_session_t *u = p->sessions, *next; u; u = next) {
                next = u->next;
                if (now - u->last_ms > UDP_IDLE_MS)
                        session_close(p, u);
        }
}

static void remove_tag(netd_proxy_t *p, const char *tag) {
        for (listener_t **lp = &p->listeners; *lp;) {
                listener_t *l = *lp;
                if (!streq(l->tag, tag)) {
                        lp = &l->next;
                        continue;
                }
                for (udp_session_t *u = p->sessions, *next; u; u = next) {
                        next = u->next;
                        if (u->l == l)
                                session_close(p, u);
                }
                *lp = l->next;
                close(l->fd);
                free(l);
        }
        for (conn_t *c = p->conns, *next; c; c = next) {
                next = c->next;
                if (streq(c->tag, tag))
                        conn_close(p, c);
        }
}

static void run_ops(netd_proxy_t *p) {
        uint64_t v;

        (void)eventfd_read(p->wakefd, &v);
        pthread_mutex_lock(&p->lock);
        for (op_t *o = p->ops; o; o = o->next) {
                if (o->done)
                        continue;
                if (o->add) {
                        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &o->l->h };
                        o->result = epoll_ctl(p->epfd, EPOLL_CTL_ADD, o->l->fd, &ev) < 0 ? -errno : 0;
                        if (o->result == 0) {
                                o->l->next = p->listeners;
                                p->listeners = o->l;
                        }
                } else
                        remove_tag(p, o->tag);
                o->done = true;
        }
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

static void *proxy_main(void *arg) {
        netd_proxy_t *p = arg;
        struct epoll_event evs[64];
        uint64_t last_sweep = now_ms();

        while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
                int n = epoll_wait(p->epfd, evs, ELEMENTSOF(evs), 1000);

                for (int k = 0; k < n; k++) {
                        handle_t *h = evs[k].data.ptr;
                        switch (h->kind) {
                        case K_WAKE:
                                run_ops(p);
                                /* Handles later in this batch may belong to what was just removed. */
                                k = n;
                                break;
                        case K_LISTEN: {
                                listener_t *l = h->obj;
                                if (l->proto == PORT_TCP)
                                        on_accept(p, l);
                                else
                                        on_udp_listener(p, l);
                                break;
                        }
                        case K_CONN:
                                on_conn(p, h->obj, h->side, evs[k].events);
                                break;
                        case K_UDP_SESSION:
                                on_udp_session(p, h->obj);
                                break;
                        }
                }
                free_dead(p);
                if (now_ms() - last_sweep > 5000) {
                        sweep_udp(p);
                        last_sweep = now_ms();
                }
        }
        return NULL;
}

int netd_proxy_new(netd_proxy_t **ret) {
        netd_proxy_t *p = calloc(1, sizeof(*p));
        struct epoll_event ev;

        if (!p)
                return -ENOMEM;
        p->epfd = epoll_create1(EPOLL_CLOEXEC);
        p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        p->wake.kind = K_WAKE;
        ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &p->wake };
        if (p->epfd < 0 || p->wakefd < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev) < 0) {
                int r = -errno;
                if (p->epfd >= 0)
                        close(p->epfd);
                if (p->wakefd >= 0)
                        close(p->wakefd);
                free(p);
                return r;
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
                close(p->epfd);
                close(p->wakefd);
                free(p);
                return -EAGAIN;
        }
        *ret = p;
        return 0;
}

/* Hand one op to the thread and wait until it ran. */
static int submit(netd_proxy_t *p, op_t *o) {
        uint64_t one = 1;

        pthread_mutex_lock(&p->lock);
        o->next = p->ops;
        p->ops = o;
        pthread_mutex_unlock(&p->lock);
        (void)eventfd_write(p->wakefd, one);
        pthread_mutex_lock(&p->lock);
        while (!o->done)
                pthread_cond_wait(&p->cond, &p->lock);
        for (op_t **op = &p->ops; *op; op = &(*op)->next)
                if (*op == o) {
                        *op = o->next;
                        break;
                }
        pthread_mutex_unlock(&p->lock);
        return o->result;
}

int netd_proxy_add(netd_proxy_t *p, const char *tag, int listen_fd, port_protocol_t proto, uint32_t guest,
                   uint16_t target) {
        listener_t *l = calloc(1, sizeof(*l));
        op_t o = { .add = true };
        int r;

        if (!l)
                return -ENOMEM;
        l->fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 3);
        if (l->fd < 0) {
                r = -errno;
                free(l);
                return r;
        }
        l->h = (handle_t){ .kind = K_LISTEN, .obj = l };
        snprintf(l->tag, sizeof(l->tag), "%s", tag);
        l->proto = proto;
        l->guest = (struct sockaddr_in){ .sin_family = AF_INET,
                                         .sin_port = htons(target),
                                         .sin_addr.s_addr = htonl(guest) };
        o.l = l;
        r = submit(p, &o);
        if (r < 0) {
                close(l->fd);
                free(l);
        }
        return r;
}

int netd_proxy_remove(netd_proxy_t *p, const char *tag) {
        op_t o = {};

        snprintf(o.tag, sizeof(o.tag), "%s", tag);
        return submit(p, &o);
}

void netd_proxy_free(netd_proxy_t *p) {
        uint64_t one = 1;

        if (!p)
                return;
        __atomic_store_n(&p->stop, true, __ATOMIC_RELEASE);
        (void)eventfd_write(p->wakefd, one);
        pthread_join(p->thread, NULL);
        while (p->conns)
                conn_close(p, p->conns);
        free_dead(p);
        while (p->sessions)
                session_close(p, p->sessions);
        while (p->listeners) {
                listener_t *l = p->listeners;
                p->listeners = l->next;
                close(l->fd);
                free(l);
        }
        close(p->epfd);
        close(p->wakefd);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        free(p);
}
