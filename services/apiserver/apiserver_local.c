/* apiserver_local.c: the API on a unix socket, for local users identified by the kernel.
 *
 * Why a relay: Debian's civetweb 1.15 is built without USE_X_DOM_SOCKET
 * (mg_check_feature(MG_FEATURES_X_DOMAIN_SOCKET) is 0), so it cannot listen on a unix socket,
 * and it exports neither the connection's descriptor (mg_get_connection_fd is not in 1.15)
 * nor any other way to ask for SO_PEERCRED. Writing a second HTTP server for the socket would
 * duplicate every limit apiserver_http.c sets. Instead, apiserver accepts on the unix socket
 * itself, reads the peer's credentials once per connection (SO_PEERCRED, SO_PEERGROUPS),
 * refuses strangers there, and relays each admitted connection byte for byte to a second
 * civetweb listener on 127.0.0.1 with an ephemeral port. The relay's TCP socket is bound
 * before it connects, and its source port is registered with the identity: civetweb's
 * request_info gives server_port and remote_port, so the router finds the identity of a
 * request that arrived on the internal listener from a registered port.
 *
 * Why that cannot be forged: a registered port is held by the relay's bound socket (no
 * SO_REUSEADDR or SO_REUSEPORT), so no other socket can bind it, and Linux never picks an
 * explicitly bound port for another socket's implicit bind on connect(); the 4-tuple
 * (127.0.0.1:port -> 127.0.0.1:internal) is the relay's alone until it closes, and the entry
 * is removed before that. A process connecting to the internal port by itself finds no entry
 * and is an ordinary client: it needs a token like any other.
 *
 * HTTP stays civetweb's: the relay parses nothing, so keep-alive, bodies, SSE streams and
 * every timeout of apiserver_http.c apply as on TCP. */
#include "services/apiserver/apiserver_local.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

/* Connections relayed at once; beyond, a connection is answered 503 and closed. Each holds
 * a thread here and a civetweb worker. */
#define LOCAL_RELAYS_MAX 64
#define LOCAL_GROUPS_MAX 256
#define RELAY_BUF 16384

struct relay_slot {
        bool used;
        uint16_t port; /* the relay's source port towards the internal listener */
        auth_identity_t identity;
};

struct apiserver_local {
        apiserver_t *api;
        int listen_fd;
        int stop_pipe[2];
        uint16_t internal_port;
        gid_t group; /* members are operators; (gid_t)-1: none */
        bool has_group;
        char *path;
        pthread_t acceptor;
        bool acceptor_started;
        pthread_mutex_t lock;
        pthread_cond_t idle; /* signalled when a relay ends */
        unsigned relays;     /* running relay threads */
        bool stopping;
        struct relay_slot slots[LOCAL_RELAYS_MAX];
};

typedef struct relay {
        apiserver_local_t *local;
        int client;  /* the unix socket connection */
        int refused; /* 0: relay as identity; else answer this status and close */
        auth_identity_t identity;
} relay_t;

int apiserver_local_identity(apiserver_t *api, const struct mg_request_info *info, auth_identity_t *ret) {
        /* Set once, after civetweb already serves: requests before that are no local ones. */
        apiserver_local_t *l = __atomic_load_n(&api->local, __ATOMIC_ACQUIRE);
        int r = -ENOENT;

        if (!l || info->server_port != l->internal_port || !streq(info->remote_addr, "127.0.0.1"))
                return -ENOENT;
        pthread_mutex_lock(&l->lock);
        for (size_t i = 0; i < LOCAL_RELAYS_MAX; i++)
                if (l->slots[i].used && l->slots[i].port == info->remote_port) {
                        *ret = l->slots[i].identity;
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&l->lock);
        return r;
}

/* Whether the peer is in group: its primary gid or one of its supplementary groups, as the
 * kernel recorded them when it connected (SO_PEERGROUPS, Linux 4.13). */
static bool peer_in_group(int fd, const struct ucred *cred, gid_t group) {
        gid_t groups[LOCAL_GROUPS_MAX];
        socklen_t len = sizeof(groups);

        if (cred->gid == group)
                return true;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return false; /* ERANGE: more groups than we look at; not a member we can prove */
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (groups[i] == group)
                        return true;
        return false;
}

/* The identity of the peer on fd: 0, or -EPERM for someone who may not use the socket. */
static int peer_identity(apiserver_local_t *l, int fd, auth_identity_t *ret) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        *ret = (auth_identity_t){ .via = AUTH_VIA_LOCAL };
        snprintf(ret->name, sizeof(ret->name), "uid:%u", (unsigned)cred.uid);
        if (cred.uid == 0)
                ret->role = AUTH_ROLE_ADMIN;
        else if (l->has_group && peer_in_group(fd, &cred, l->group))
                ret->role = AUTH_ROLE_OPERATOR;
        else
                return -EPERM;
        ret->scopes = auth_role_scopes(ret->role);
        return 0;
}

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

/* A whole answer on a connection we then close, for the peers we do not relay. The request
 * is read first and the rest drained after: a client still writing its request to a socket we
 * closed would see EPIPE instead of the answer. */
static void refuse(int fd, int status, const char *title, const char *detail) {
        char body[512], buf[1024];
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n;

        if (poll(&p, 1, 1000) > 0)
                (void)recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

        snprintf(body, sizeof(body),
                 "{\"type\":\"urn:husk:problem:%s\",\"title\":\"%s\",\"status\":%d,\"detail\":\"%s\"}",
                 status == 403 ? "forbidden" : "unavailable", title, status, detail);
        n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\nCache-Control: no-store\r\n\r\n%s",
                     status, title, strlen(body), body);
        /* Best effort and never blocking for long: the peer may not read at all. */
        (void)send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)shutdown(fd, SHUT_WR);
        drain(fd, 1000);
}

static int slot_add(apiserver_local_t *l, uint16_t port, const auth_identity_t *identity) {
        int r = -EBUSY;

        pthread_mutex_lock(&l->lock);
        for (size_t i = 0; i < LOCAL_RELAYS_MAX; i++)
                if (!l->slots[i].used) {
                        l->slots[i] = (struct relay_slot){ .used = true, .port = port, .identity = *identity };
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&l->lock);
        return r;
}

static void slot_remove(apiserver_local_t *l, uint16_t port) {
        pthread_mutex_lock(&l->lock);
        for (size_t i = 0; i < LOCAL_RELAYS_MAX; i++)
                if (l->slots[i].used && l->slots[i].port == port)
                        l->slots[i] = (struct relay_slot){};
        pthread_mutex_unlock(&l->lock);
}

/* A TCP socket on 127.0.0.1 bound to an ephemeral port, connected to the internal listener
 * only after its port is registered with identity. */
static int relay_connect(apiserver_local_t *l, const auth_identity_t *identity, uint16_t *ret_port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1, r;

        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
                return -errno;
        *ret_port = ntohs(a.sin_port);
        r = slot_add(l, *ret_port, identity);
        if (r < 0)
                return r;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        a.sin_port = htons(l->internal_port);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                r = -errno;
                slot_remove(l, *ret_port);
                return r;
        }
        return TAKE_FD(fd);
}

/* Copy what is readable from `from` to `to`. 0 at end of stream, -errno on failure. */
static ssize_t pump(int from, int to) {
        char buf[RELAY_BUF];
        ssize_t n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);

        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 1 : -errno;
        for (ssize_t off = 0; off < n;) {
                ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += w;
        }
        return n;
}

static void *relay_run(void *userdata) {
        relay_t *rl = userdata;
        apiserver_local_t *l = rl->local;
        _cleanup_close_ int client = rl->client, upstream = -1;
        bool client_open = true, upstream_open = true;
        uint16_t port = 0;

        if (rl->refused) {
                refuse(client, 403, "Forbidden",
                       "only root and members of apiserver.socket_group may use this socket; log in over TCP instead");
                upstream = -1;
        } else
                upstream = relay_connect(l, &rl->identity, &port);
        if (upstream < 0 && !rl->refused) {
                log_warning_errno(upstream, "Local API socket: cannot reach the internal listener: %m");
                refuse(client, 503, "Service Unavailable", "the apiserver cannot serve this connection now");
        }
        /* Until both directions ended: a half-close is passed on (a client may shut down its
         * sending side and still read the answer). */
        while (upstream >= 0 && (client_open || upstream_open)) {
                struct pollfd p[2] = {
                        { .fd = client_open ? client : -1, .events = POLLIN },
                        { .fd = upstream_open ? upstream : -1, .events = POLLIN },
                };
                int n = poll(p, 2, 1000);

                if (n < 0 && errno != EINTR)
                        break;
                if (__atomic_load_n(&l->stopping, __ATOMIC_SEQ_CST) && n == 0)
                        break;
                if (p[0].revents) {
                        ssize_t k = pump(client, upstream);
                        if (k < 0)
                                break;
                        if (k == 0) {
                                client_open = false;
                                (void)shutdown(upstream, SHUT_WR);
                        }
                }
                if (p[1].revents) {
                        ssize_t k = pump(upstream, client);
                        if (k < 0)
                                break;
                        if (k == 0) {
                                upstream_open = false;
                                (void)shutdown(client, SHUT_WR);
                        }
                }
        }
        /* Unregistered before the port is released, so that it never names someone else. */
        if (port)
                slot_remove(l, port);
        free(rl);
        pthread_mutex_lock(&l->lock);
        l->relays--;
        pthread_cond_broadcast(&l->idle);
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

static void admit(apiserver_local_t *l, int fd) {
        _cleanup_close_ int client = fd;
        bool stranger;
        auth_identity_t identity;
        pthread_attr_t attr;
        pthread_t thread;
        relay_t *rl;
        int r;

        /* Strangers are answered on a thread of their own too: refuse() waits for their
         * request, which must not hold up the accepting thread. */
        r = peer_identity(l, client, &identity);
        stranger = r == -EPERM;
        if (r < 0 && !stranger) {
                log_warning_errno(r, "Local API socket: cannot read the peer's credentials: %m");
                return;
        }
        pthread_mutex_lock(&l->lock);
        if (l->relays >= LOCAL_RELAYS_MAX) {
                static const char busy[] =
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

                pthread_mutex_unlock(&l->lock);
                /* No waiting for the request here: this thread accepts for everyone. */
                (void)send(client, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                return;
        }
        l->relays++;
        pthread_mutex_unlock(&l->lock);

        rl = malloc(sizeof(*rl));
        r = rl ? 0 : ENOMEM;
        if (rl) {
                *rl = (relay_t){ .local = l, .client = client, .refused = stranger ? 403 : 0, .identity = identity };
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                r = pthread_create(&thread, &attr, relay_run, rl);
                pthread_attr_destroy(&attr);
        }
        if (r != 0) {
                free(rl);
                pthread_mutex_lock(&l->lock);
                l->relays--;
                pthread_mutex_unlock(&l->lock);
                refuse(client, 503, "Service Unavailable", "the apiserver cannot serve this connection now");
                return;
        }
        TAKE_FD(client); /* the relay owns it */
}

static void *accept_run(void *userdata) {
        apiserver_local_t *l = userdata;

        for (;;) {
                struct pollfd p[2] = { { .fd = l->listen_fd, .events = POLLIN },
                                       { .fd = l->stop_pipe[0], .events = POLLIN } };
                int fd;

                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        break;
                if (p[1].revents)
                        break;
                if (!p[0].revents)
                        continue;
                fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                        admit(l, fd);
        }
        return NULL;
}

static int bind_socket(apiserver_local_t *l) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        mode_t old;
        int r;

        if (strlen(l->path) >= sizeof(a.sun_path))
                return -ENAMETOOLONG;
        memcpy(a.sun_path, l->path, strlen(l->path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A socket left by an apiserver that died; only ever a socket (never follow or remove
         * anything else someone put there). */
        struct stat st;
        if (lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void)unlink(l->path);
        /* Never reachable by others between bind() and chmod(). */
        old = umask(0177);
        r = bind(fd, (struct sockaddr *)&a, sizeof(a));
        umask(old);
        if (r < 0)
                return -errno;
        if (l->has_group && chown(l->path, (uid_t)-1, l->group) < 0)
                return -errno;
        if (chmod(l->path, 0660) < 0)
                return -errno;
        if (listen(fd, 128) < 0)
                return -errno;
        l->listen_fd = TAKE_FD(fd);
        return 0;
}

int apiserver_local_start(apiserver_t *api, const char *runtime_dir, const char *group, uint16_t internal_port) {
        _cleanup_(apiserver_local_freep) apiserver_local_t *l = NULL;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return log_error_errno(ENOMEM, "Out of memory");
        l->api = api;
        l->listen_fd = l->stop_pipe[0] = l->stop_pipe[1] = -1;
        l->internal_port = internal_port;
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->idle, NULL);
        if (asprintf(&l->path, "%s/" HUSK_API_SOCKET, runtime_dir) < 0) {
                l->path = NULL;
                return log_error_errno(ENOMEM, "Out of memory");
        }
        if (group && *group) {
                struct group *g = getgrnam(group);

                if (!g)
                        return log_error_errno(ENOENT, "apiserver.socket_group: no group \"%s\"", group);
                l->group = g->gr_gid;
                l->has_group = true;
        }
        r = mkdir_p(runtime_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", runtime_dir);
        r = bind_socket(l);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on %s: %m", l->path);
        if (pipe2(l->stop_pipe, O_CLOEXEC) < 0)
                return log_error_errno(errno, "Failed to create a pipe: %m");
        r = -pthread_create(&l->acceptor, NULL, accept_run, l);
        if (r < 0)
                return log_error_errno(r, "Failed to start the local socket's thread: %m");
        l->acceptor_started = true;
        log_info("REST API for local users on %s (root: admin%s%s%s)", l->path, l->has_group ? "; group " : "",
                 l->has_group ? group : "", l->has_group ? ": operator" : "");
        __atomic_store_n(&api->local, TAKE_PTR(l), __ATOMIC_RELEASE);
        return 0;
}

void apiserver_local_free(apiserver_local_t *l) {
        if (!l)
                return;
        __atomic_store_n(&l->stopping, true, __ATOMIC_SEQ_CST);
        if (l->acceptor_started) {
                if (write(l->stop_pipe[1], "x", 1) < 0)
                        log_debug_errno(errno, "Waking the local socket's thread failed: %m");
                pthread_join(l->acceptor, NULL);
        }
        /* Relays end within a poll interval of `stopping` (their civetweb side is gone too). */
        pthread_mutex_lock(&l->lock);
        while (l->relays > 0)
                pthread_cond_wait(&l->idle, &l->lock);
        pthread_mutex_unlock(&l->lock);
        if (l->listen_fd >= 0) {
                close(l->listen_fd);
                (void)unlink(l->path);
        }
        if (l->stop_pipe[0] >= 0)
                close(l->stop_pipe[0]);
        if (l->stop_pipe[1] >= 0)
                close(l->stop_pipe[1]);
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->idle);
        free(l->path);
        free(l);
}
