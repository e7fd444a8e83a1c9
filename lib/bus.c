/* bus.c: PUB/SUB events and DEALER/ROUTER requests over ZeroMQ (see bus.h, proto/SCHEMA.md). */
#include "lib/bus.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "lib/stats.h"

#define BUS_RETRY_INTERVAL_MS 1000
#define BUS_DEFAULT_TIMEOUT_MS 5000
#define BUS_CONNECT_RETRY_MS 20 /* a call to a peer not connected yet tries again this soon */

/* ---- shared helpers ------------------------------------------------------------------------ */

/* ipc:// endpoints are files: make their directory, and after bind restrict the socket to
 * owner and group (0660), as DESIGN.md asks. */
static int ipc_prepare_dir(const char *endpoint) {
        char buf[PATH_MAX];

        if (strncmp(endpoint, "ipc://", 6) != 0)
                return 0;
        if (snprintf(buf, sizeof(buf), "%s", endpoint + 6) >= (int)sizeof(buf))
                return -ENAMETOOLONG;
        return mkdir_p(dirname(buf), 0755);
}

static void ipc_restrict(const char *endpoint) {
        if (strncmp(endpoint, "ipc://", 6) == 0 && chmod(endpoint + 6, 0660) < 0)
                log_debug_errno(errno, "Failed to chmod %s, ignoring: %m", endpoint + 6);
}

static zsock_t *sock_new(int type) {
        zsock_t *s = zsock_new(type);

        if (s)
                zsock_set_linger(s, 0);
        return s;
}

static int sock_bind(zsock_t *s, const char *endpoint) {
        int r = ipc_prepare_dir(endpoint);

        if (r < 0)
                return r;
        if (zsock_bind(s, "%s", endpoint) < 0)
                return -errno ? -errno : -EADDRINUSE;
        ipc_restrict(endpoint);
        return 0;
}

/* Unpack one msgpack map from a frame, refusing oversized input and trailing bytes. */
static int unpack_map(const void *data, size_t size, msgpack_unpacked *ret) {
        size_t off = 0;
        int r;

        r = mp_check(data, size);
        if (r < 0)
                return r;
        msgpack_unpacked_init(ret);
        if (msgpack_unpack_next(ret, data, size, &off) != MSGPACK_UNPACK_SUCCESS || off != size ||
            ret->data.type != MSGPACK_OBJECT_MAP) {
                msgpack_unpacked_destroy(ret);
                return -EBADMSG;
        }
        return 0;
}

/* Copy a frame holding a type or method name into buf, refusing empty, long or binary names. */
static int frame_name(zframe_t *f, char *buf, size_t size) {
        size_t n = zframe_size(f);

        if (n == 0 || n >= size || n > BUS_TYPE_MAX)
                return -EBADMSG;
        memcpy(buf, zframe_data(f), n);
        buf[n] = '\0';
        if (strlen(buf) != n)
                return -EBADMSG;
        return 0;
}

/* ---- events --------------------------------------------------------------------------------- */

struct bus_pub {
        zsock_t *sock;
        pthread_mutex_t lock; /* ZeroMQ sockets are not thread-safe; publishers may be */
};

int bus_pub_new(const char *endpoint, bus_pub_t **ret) {
        bus_pub_t *p = calloc(1, sizeof(*p));
        int r;

        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        p->sock = sock_new(ZMQ_PUB);
        if (!p->sock) {
                bus_pub_destroy(&p);
                return -ENOMEM;
        }
        r = sock_bind(p->sock, endpoint);
        if (r < 0) {
                bus_pub_destroy(&p);
                return r;
        }
        *ret = p;
        return 0;
}

void bus_pub_destroy(bus_pub_t **self_p) {
        bus_pub_t *p = *self_p;

        if (!p)
                return;
        zsock_destroy(&p->sock);
        pthread_mutex_destroy(&p->lock);
        free(p);
        *self_p = NULL;
}

int bus_pub_send(bus_pub_t *self, const char *type, const void *body, size_t size) {
        void *h = zsock_resolve(self->sock);
        int r = 0;

        pthread_mutex_lock(&self->lock);
        /* PUB never blocks: a slow subscriber loses messages at its high-water mark. */
        if (zmq_send(h, type, strlen(type), ZMQ_SNDMORE) < 0 || zmq_send(h, body, size, 0) < 0)
                r = -errno;
        pthread_mutex_unlock(&self->lock);
        return r;
}

struct bus_sub {
        zsock_t *sock;
        bus_event_fn fn;
        void *userdata;
};

int bus_sub_new(const char *const *endpoints, size_t n_endpoints, bus_sub_t **ret) {
        bus_sub_t *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->sock = sock_new(ZMQ_SUB);
        if (!s->sock) {
                free(s);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_endpoints; i++)
                if (zsock_connect(s->sock, "%s", endpoints[i]) < 0) {
                        int r = errno ? -errno : -EINVAL;
                        bus_sub_destroy(&s);
                        return r;
                }
        *ret = s;
        return 0;
}

void bus_sub_destroy(bus_sub_t **self_p) {
        bus_sub_t *s = *self_p;

        if (!s)
                return;
        zsock_destroy(&s->sock);
        free(s);
        *self_p = NULL;
}

int bus_sub_subscribe(bus_sub_t *self, const char *prefix) {
        zsock_set_subscribe(self->sock, prefix);
        return 0;
}

zsock_t *bus_sub_sock(bus_sub_t *self) { return self->sock; }

/* Receive one [type][body] event without blocking; -EAGAIN when none is queued. */
static int sub_recv_raw(bus_sub_t *s, char *type, size_t type_size, zframe_t **ret_body) {
        zmsg_t *msg;
        int r;

        if (!(zsock_events(s->sock) & ZMQ_POLLIN))
                return -EAGAIN;
        msg = zmsg_recv(s->sock);
        if (!msg)
                return -EAGAIN;
        if (zmsg_size(msg) != 2) {
                zmsg_destroy(&msg);
                return -EBADMSG;
        }
        r = frame_name(zmsg_first(msg), type, type_size);
        if (r >= 0)
                *ret_body = zframe_dup(zmsg_next(msg));
        zmsg_destroy(&msg);
        return r;
}

static int sub_on_readable(zloop_t *loop, zsock_t *sock, void *arg) {
        bus_sub_t *s = arg;

        /* Drain everything queued: zloop only tells us the socket became readable. */
        for (;;) {
                char type[BUS_TYPE_MAX + 1];
                zframe_t *body = NULL;
                msgpack_unpacked u;
                int r = sub_recv_raw(s, type, sizeof(type), &body);

                if (r == -EAGAIN)
                        return 0;
                if (r < 0) {
                        log_debug("Dropping malformed event frame");
                        continue;
                }
                r = unpack_map(zframe_data(body), zframe_size(body), &u);
                if (r < 0)
                        log_debug_errno(r, "Dropping event %s with malformed body: %m", type);
                else {
                        s->fn(type, &u.data, s->userdata);
                        msgpack_unpacked_destroy(&u);
                }
                zframe_destroy(&body);
        }
}

int bus_sub_attach(bus_sub_t *self, zloop_t *loop, bus_event_fn fn, void *userdata) {
        self->fn = fn;
        self->userdata = userdata;
        return zloop_reader(loop, self->sock, sub_on_readable, self) < 0 ? -ENOMEM : 0;
}

int bus_sub_recv(bus_sub_t *self, int timeout_ms, char **ret_type, void **ret_body, size_t *ret_size) {
        uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_monotonic_ms() + (uint64_t)timeout_ms;

        for (;;) {
                char type[BUS_TYPE_MAX + 1];
                zframe_t *body = NULL;
                zmq_pollitem_t item = { .socket = zsock_resolve(self->sock), .events = ZMQ_POLLIN };
                uint64_t now = now_monotonic_ms();
                int r;

                if (now >= deadline)
                        return -ETIMEDOUT;
                r = zmq_poll(&item, 1, deadline == UINT64_MAX ? -1 : (long)(deadline - now));
                if (r < 0)
                        return -errno;
                if (r == 0)
                        continue;
                r = sub_recv_raw(self, type, sizeof(type), &body);
                if (r == -EAGAIN || r == -EBADMSG)
                        continue;
                if (r < 0)
                        return r;
                *ret_size = zframe_size(body);
                *ret_body = malloc(*ret_size ? *ret_size : 1);
                *ret_type = strdup(type);
                if (!*ret_body || !*ret_type) {
                        free(*ret_body);
                        free(*ret_type);
                        zframe_destroy(&body);
                        return -ENOMEM;
                }
                memcpy(*ret_body, zframe_data(body), *ret_size);
                zframe_destroy(&body);
                return 0;
        }
}

/* ---- daemon.info: answered by every server ------------------------------------------------- */

static struct {
        pthread_mutex_t lock;
        char daemon[PROTO_NAME_MAX + 1];
        uint64_t started_at_ns; /* 0 until set */
} identity = { .lock = PTHREAD_MUTEX_INITIALIZER };

void bus_identity_set(const char *daemon) {
        pthread_mutex_lock(&identity.lock);
        snprintf(identity.daemon, sizeof(identity.daemon), "%s", daemon);
        identity.started_at_ns = now_realtime_ns();
        pthread_mutex_unlock(&identity.lock);
}

/* Without bus_identity_set() (tools, tests), the program's name and the first server's birth. */
static void identity_default(void) {
        pthread_mutex_lock(&identity.lock);
        if (identity.daemon[0] == '\0')
                snprintf(identity.daemon, sizeof(identity.daemon), "%s", program_invocation_short_name);
        if (identity.started_at_ns == 0)
                identity.started_at_ns = now_realtime_ns();
        pthread_mutex_unlock(&identity.lock);
}

/* daemon.info's 5 keys, into a map the caller opened (daemon.stats has them too). */
static void pack_identity(msgpack_packer *pk) {
        char host[HOST_NAME_MAX + 1] = "";
        char daemon[sizeof(identity.daemon)];
        uint64_t started_at_ns;

        (void)gethostname(host, sizeof(host));
        host[sizeof(host) - 1] = '\0';
        pthread_mutex_lock(&identity.lock);
        memcpy(daemon, identity.daemon, sizeof(daemon));
        started_at_ns = identity.started_at_ns;
        pthread_mutex_unlock(&identity.lock);
        mp_pack_kv_str(pk, "daemon", daemon);
        mp_pack_kv_str(pk, "version", HUSK_VERSION);
        mp_pack_kv_u64(pk, "pid", (uint64_t)getpid());
        mp_pack_kv_u64(pk, "started_at_ns", started_at_ns);
        mp_pack_kv_str(pk, "host", host);
}

static int method_daemon_info(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        msgpack_pack_map(pk, 5);
        pack_identity(pk);
        return 0;
}

static int method_daemon_stats(bus_request_t *req, msgpack_packer *pk, void *userdata);

/* Methods every server has after its own table's (which may not repeat them). */
static const bus_method_t builtin_methods[] = {
        { BUS_METHOD_DAEMON_INFO, method_daemon_info },
        { BUS_METHOD_DAEMON_STATS, method_daemon_stats },
        {},
};

/* ---- requests: server ------------------------------------------------------------------------ */

/* One method's requests as this server answered them. */
typedef struct method_stats {
        const char *name; /* the table's; "unknown" for the last slot: any name not served */
        uint64_t errors;
        stats_hist_t latency; /* count: requests answered */
} method_stats_t;

struct bus_server {
        zsock_t *sock;
        const bus_method_t *methods;
        void *userdata;
        /* The daemon's table, then builtin_methods, then "unknown". Answers are counted on the
         * loop, deferred ones wherever they are sent from: hence the lock. */
        pthread_mutex_t stats_lock;
        method_stats_t *stats;
        size_t n_stats;
        bus_stats_fn stats_fn;
        void *stats_userdata;
};

static size_t table_len(const bus_method_t *m) {
        size_t n = 0;

        while (m[n].name)
                n++;
        return n;
}

static int stats_init(bus_server_t *s) {
        size_t own = table_len(s->methods), builtin = table_len(builtin_methods);

        s->n_stats = own + builtin + 1;
        s->stats = calloc(s->n_stats, sizeof(*s->stats));
        if (!s->stats)
                return -ENOMEM;
        for (size_t k = 0; k < own; k++)
                s->stats[k].name = s->methods[k].name;
        for (size_t k = 0; k < builtin; k++)
                s->stats[own + k].name = builtin_methods[k].name;
        s->stats[s->n_stats - 1].name = "unknown";
        pthread_mutex_init(&s->stats_lock, NULL);
        return 0;
}

/* The slot of method: the daemon's own first (it may not repeat a builtin), then the builtins. */
static size_t stats_index(const bus_server_t *s, const char *method) {
        for (size_t k = 0; k + 1 < s->n_stats; k++)
                if (streq(s->stats[k].name, method))
                        return k;
        return s->n_stats - 1;
}

static void stats_record(bus_server_t *s, size_t index, double started, bool error) {
        double elapsed = stats_now() - started;

        if (!s->stats || index >= s->n_stats)
                return;
        pthread_mutex_lock(&s->stats_lock);
        stats_hist_observe(&s->stats[index].latency, elapsed);
        if (error)
                s->stats[index].errors++;
        pthread_mutex_unlock(&s->stats_lock);
}

void bus_server_set_stats(bus_server_t *self, bus_stats_fn fn, void *userdata) {
        self->stats_fn = fn;
        self->stats_userdata = userdata;
}

static int method_daemon_stats(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        bus_server_t *s = req->server_;
        size_t shown = 0;

        msgpack_pack_map(pk, 8);
        pack_identity(pk);
        mp_pack_str(pk, "bounds");
        msgpack_pack_array(pk, STATS_N_BOUNDS);
        for (size_t k = 0; k < STATS_N_BOUNDS; k++)
                msgpack_pack_double(pk, stats_bounds[k]);
        pthread_mutex_lock(&s->stats_lock);
        /* "unknown" only once something unknown was asked. */
        shown = s->stats[s->n_stats - 1].latency.count ? s->n_stats : s->n_stats - 1;
        mp_pack_str(pk, "methods");
        msgpack_pack_array(pk, (uint32_t)shown);
        for (size_t k = 0; k < shown; k++) {
                msgpack_pack_map(pk, 5);
                mp_pack_kv_str(pk, "method", s->stats[k].name);
                mp_pack_kv_u64(pk, "errors", s->stats[k].errors);
                stats_pack_hist_fields(pk, &s->stats[k].latency);
        }
        pthread_mutex_unlock(&s->stats_lock);
        mp_pack_str(pk, "metrics");
        if (s->stats_fn)
                s->stats_fn(pk, s->stats_userdata);
        else
                msgpack_pack_array(pk, 0);
        return 0;
}

int bus_request_fail(bus_request_t *req, const char *code, const char *fmt, ...) {
        va_list ap;

        req->error_code = code;
        va_start(ap, fmt);
        vsnprintf(req->error_message, sizeof(req->error_message), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

int bus_server_new(const char *endpoint, const bus_method_t *methods, void *userdata, bus_server_t **ret) {
        bus_server_t *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        identity_default();
        s->methods = methods;
        s->userdata = userdata;
        if (stats_init(s) < 0) {
                free(s);
                return -ENOMEM;
        }
        s->sock = sock_new(ZMQ_ROUTER);
        if (!s->sock) {
                bus_server_destroy(&s);
                return -ENOMEM;
        }
        r = sock_bind(s->sock, endpoint);
        if (r < 0) {
                bus_server_destroy(&s);
                return r;
        }
        *ret = s;
        return 0;
}

void bus_server_destroy(bus_server_t **self_p) {
        bus_server_t *s = *self_p;

        if (!s)
                return;
        zsock_destroy(&s->sock);
        if (s->stats)
                pthread_mutex_destroy(&s->stats_lock);
        free(s->stats);
        free(s);
        *self_p = NULL;
}

static void pack_error(msgpack_packer *pk, uint64_t id, const char *code, const char *message) {
        msgpack_pack_map(pk, 2);
        mp_pack_kv_u64(pk, "id", id);
        mp_pack_str(pk, "error");
        msgpack_pack_map(pk, 2);
        mp_pack_kv_str(pk, "code", code);
        mp_pack_kv_str(pk, "message", message);
}

static const bus_method_t *find_method(const bus_method_t *methods, const char *name) {
        for (const bus_method_t *m = methods; m->name; m++)
                if (streq(m->name, name))
                        return m;
        return NULL;
}

struct bus_deferred {
        bus_server_t *server;
        zmsg_t *envelope; /* routing identity frames */
        uint64_t id;
        size_t stats_index; /* the request's accounting, done when it is answered */
        double started;
};

bus_deferred_t *bus_request_defer(bus_request_t *req) {
        bus_deferred_t *d = calloc(1, sizeof(*d));

        if (!d)
                return NULL;
        d->envelope = zmsg_dup(req->envelope_);
        if (!d->envelope) {
                free(d);
                return NULL;
        }
        d->server = req->server_;
        d->id = req->id;
        d->stats_index = req->stats_index_;
        d->started = req->started_;
        return d;
}

static void deferred_send(bus_deferred_t **dp, const msgpack_sbuffer *body, bool error) {
        bus_deferred_t *d = *dp;
        zmsg_t *reply = d->envelope;

        stats_record(d->server, d->stats_index, d->started, error);
        zmsg_addmem(reply, "", 0);
        zmsg_addstr(reply, "reply");
        zmsg_addmem(reply, body->data, body->size);
        if (zmsg_send(&reply, d->server->sock) < 0)
                zmsg_destroy(&reply);
        free(d);
        *dp = NULL;
}

void bus_deferred_reply(bus_deferred_t **dp, const void *result, size_t size) {
        msgpack_sbuffer buf;
        msgpack_packer pk;

        if (!*dp)
                return;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_u64(&pk, "id", (*dp)->id);
        mp_pack_str(&pk, "result");
        msgpack_sbuffer_write(&buf, result, size);
        deferred_send(dp, &buf, false);
        msgpack_sbuffer_destroy(&buf);
}

void bus_deferred_fail(bus_deferred_t **dp, const char *code, const char *fmt, ...) {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        char message[512];
        va_list ap;

        if (!*dp)
                return;
        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        pack_error(&pk, (*dp)->id, code, message);
        deferred_send(dp, &buf, true);
        msgpack_sbuffer_destroy(&buf);
}

int bus_server_dispatch(bus_server_t *s, zmsg_t *envelope, const char *method, const void *data, size_t size,
                        msgpack_sbuffer *buf) {
        msgpack_packer pk;
        msgpack_unpacked u;
        msgpack_object empty = { .type = MSGPACK_OBJECT_MAP };
        bus_request_t req = { .method = method, .server_ = s, .envelope_ = envelope };
        const bus_method_t *m;
        bool failed = true;
        int r;

        req.started_ = stats_now();
        req.stats_index_ = stats_index(s, method);
        msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
        if (unpack_map(data, size, &u) < 0) {
                pack_error(&pk, 0, BUS_ERR_INVALID, "request body is not a msgpack map");
                stats_record(s, req.stats_index_, req.started_, true);
                return 0;
        }
        if (mp_get_u64(&u.data, "id", &req.id) < 0 || mp_get_u64(&u.data, "deadline", &req.deadline_ms) < 0) {
                pack_error(&pk, req.id, BUS_ERR_INVALID, "request needs uint 'id' and 'deadline'");
                goto out;
        }
        req.args = mp_map_get(&u.data, "args");
        if (!req.args)
                req.args = &empty;
        else if (req.args->type != MSGPACK_OBJECT_MAP) {
                pack_error(&pk, req.id, BUS_ERR_INVALID, "'args' must be a map");
                goto out;
        }
        m = find_method(s->methods, method);
        if (!m)
                m = find_method(builtin_methods, method);
        if (!m) {
                char msg[128];
                snprintf(msg, sizeof(msg), "no method '%s' here", method);
                pack_error(&pk, req.id, BUS_ERR_UNKNOWN_METHOD, msg);
                goto out;
        }

        msgpack_pack_map(&pk, 2);
        mp_pack_kv_u64(&pk, "id", req.id);
        mp_pack_str(&pk, "result");
        r = m->handler(&req, &pk, s->userdata);
        if (r == BUS_DEFERRED) {
                msgpack_sbuffer_clear(buf);
                msgpack_unpacked_destroy(&u);
                return BUS_DEFERRED;
        }
        if (r < 0) {
                /* Throw away the partial success reply. */
                msgpack_sbuffer_clear(buf);
                pack_error(&pk, req.id, req.error_code ? req.error_code : BUS_ERR_INTERNAL,
                           req.error_code ? req.error_message : strerror(-r));
        } else
                failed = false;
out:
        stats_record(s, req.stats_index_, req.started_, failed);
        msgpack_unpacked_destroy(&u);
        return 0;
}

static int server_on_readable(zloop_t *loop, zsock_t *sock, void *arg) {
        bus_server_t *s = arg;

        while (zsock_events(s->sock) & ZMQ_POLLIN) {
                zmsg_t *msg = zmsg_recv(s->sock), *reply;
                zframe_t *f, *method_f, *body_f;
                char method[BUS_TYPE_MAX + 1];
                msgpack_sbuffer buf;
                msgpack_unpacked u;
                uint64_t deadline = 0;

                if (!msg)
                        break;
                /* Routing envelope: identity frames up to the empty delimiter. */
                reply = zmsg_new();
                for (f = zmsg_first(msg); f && zframe_size(f) > 0; f = zmsg_next(msg))
                        zmsg_append(reply, &(zframe_t *){ zframe_dup(f) });
                method_f = f ? zmsg_next(msg) : NULL;
                body_f = method_f ? zmsg_next(msg) : NULL;
                if (!body_f || zmsg_next(msg) || frame_name(method_f, method, sizeof(method)) < 0) {
                        log_debug("Dropping malformed request");
                        goto next;
                }
                /* A request that waited in a queue past its deadline has been given up on. */
                if (unpack_map(zframe_data(body_f), zframe_size(body_f), &u) == 0) {
                        (void)mp_get_u64(&u.data, "deadline", &deadline);
                        msgpack_unpacked_destroy(&u);
                        if (deadline > 0 && deadline < now_realtime_ms()) {
                                log_debug("Dropping request %s: deadline passed", method);
                                goto next;
                        }
                }
                msgpack_sbuffer_init(&buf);
                if (bus_server_dispatch(s, reply, method, zframe_data(body_f), zframe_size(body_f), &buf) ==
                    BUS_DEFERRED) {
                        msgpack_sbuffer_destroy(&buf);
                        goto next;
                }
                zmsg_addmem(reply, "", 0);
                zmsg_addstr(reply, "reply");
                zmsg_addmem(reply, buf.data, buf.size);
                msgpack_sbuffer_destroy(&buf);
                zmsg_send(&reply, s->sock);
next:
                zmsg_destroy(&reply);
                zmsg_destroy(&msg);
        }
        return 0;
}

int bus_server_attach(bus_server_t *self, zloop_t *loop) {
        return zloop_reader(loop, self->sock, server_on_readable, self) < 0 ? -ENOMEM : 0;
}

/* ---- requests: client ------------------------------------------------------------------------ */

/* One call in flight. The synchronous and the asynchronous paths share it, and the functions
 * below that decide when to send, resend and give up. */
typedef struct bus_pending {
        uint64_t id;
        char method[BUS_TYPE_MAX + 1];
        msgpack_sbuffer args; /* a copy, for resends; empty when the caller sent none */
        bool has_args;
        bool idempotent;
        bool sent;
        int error;            /* why it ended, for its callback */
        uint64_t deadline_ms; /* unix ms, told to the server */
        uint64_t end;         /* monotonic ms: give up */
        uint64_t next_send;   /* monotonic ms: (re)send when due */
        bus_reply_fn fn;      /* asynchronous calls only */
        void *userdata;
        struct bus_pending *next;
} bus_pending_t;

struct bus_client {
        zsock_t *sock;
        uint64_t next_id;
        /* Asynchronous mode (bus_client_attach): */
        zloop_t *loop;
        bus_pending_t *pending; /* in the order they were made; a daemon has a handful in flight */
        int timer;              /* fires at the earliest wake of any pending call; -1: none */
        uint64_t timer_at;      /* monotonic ms it fires at */
};

int bus_client_new(const char *endpoint, bus_client_t **ret) {
        bus_client_t *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->timer = -1;
        c->sock = sock_new(ZMQ_DEALER);
        if (!c->sock) {
                free(c);
                return -ENOMEM;
        }
        /* Queue only on live connections: a request to a peer that is down fails to send and
         * is retried, instead of being delivered stale when the peer comes back. */
        zsock_set_immediate(c->sock, 1);
        if (zsock_connect(c->sock, "%s", endpoint) < 0) {
                bus_client_destroy(&c);
                return -EINVAL;
        }
        /* Ids only need to be unique per client; start at a random point so a restarted caller
         * never matches a stale reply meant for its previous incarnation. */
        if (getrandom(&c->next_id, sizeof(c->next_id), 0) != sizeof(c->next_id))
                c->next_id = now_realtime_ms() << 16;
        c->next_id = (c->next_id >> 12) + 1; /* stays far from wrapping */
        *ret = c;
        return 0;
}

static void pending_free(bus_pending_t *p) {
        msgpack_sbuffer_destroy(&p->args);
        free(p);
}

void bus_client_destroy(bus_client_t **self_p) {
        bus_client_t *c = *self_p;

        if (!c)
                return;
        if (c->loop) {
                zloop_reader_end(c->loop, c->sock);
                if (c->timer >= 0)
                        zloop_timer_end(c->loop, c->timer);
        }
        /* Every callback runs exactly once: the ones still waiting learn the call was dropped. */
        while (c->pending) {
                bus_pending_t *p = c->pending;

                c->pending = p->next;
                p->fn(-ECANCELED, NULL, p->userdata);
                pending_free(p);
        }
        zsock_destroy(&c->sock);
        free(c);
        *self_p = NULL;
}

void bus_reply_free(bus_reply_t *r) {
        if (!r)
                return;
        msgpack_unpacked_destroy(&r->unpacked);
        free(r->error_code);
        free(r->error_message);
        free(r);
}

static int pending_init(bus_client_t *c, bus_pending_t *p, const char *method, const msgpack_sbuffer *args,
                        const bus_call_opts_t *opts) {
        uint64_t timeout = opts && opts->timeout_ms ? opts->timeout_ms : BUS_DEFAULT_TIMEOUT_MS;

        if (strlen(method) > BUS_TYPE_MAX)
                return -EINVAL;
        strcpy(p->method, method); /* length checked above */
        msgpack_sbuffer_init(&p->args);
        if (args) {
                if (msgpack_sbuffer_write(&p->args, args->data, args->size) < 0)
                        return -ENOMEM;
                p->has_args = true;
        }
        p->id = c->next_id++;
        p->idempotent = opts && opts->idempotent;
        p->end = now_monotonic_ms() + timeout;
        p->next_send = 0;
        p->deadline_ms = now_realtime_ms() + timeout;
        return 0;
}

static int pending_send(bus_client_t *c, const bus_pending_t *p) {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        void *h = zsock_resolve(c->sock);
        int r = 0;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, p->has_args ? 3 : 2);
        mp_pack_kv_u64(&pk, "id", p->id);
        mp_pack_kv_u64(&pk, "deadline", p->deadline_ms);
        if (p->has_args) {
                mp_pack_str(&pk, "args");
                msgpack_sbuffer_write(&buf, p->args.data, p->args.size);
        }
        if (zmq_send(h, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_send(h, p->method, strlen(p->method), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_send(h, buf.data, buf.size, ZMQ_DONTWAIT) < 0)
                r = -errno;
        msgpack_sbuffer_destroy(&buf);
        return r;
}

/* Send the call when due: the first time, and again for idempotent calls that got no answer
 * (the peer may have restarted and lost it). Returns 0 with *ret_wake set to the monotonic time
 * the call next needs attention (a resend or its end), -ETIMEDOUT when its time is up, or
 * another negative errno when it cannot be sent at all. */
static int pending_step(bus_client_t *c, bus_pending_t *p, uint64_t now, uint64_t *ret_wake) {
        int r;

        if (now >= p->end)
                return -ETIMEDOUT;
        if (now >= p->next_send && (!p->sent || p->idempotent)) {
                r = pending_send(c, p);
                if (r == 0)
                        p->sent = true;
                else if (r != -EAGAIN)
                        return r;
                /* Not connected (EAGAIN): try again shortly; sent: resend later if idempotent. */
                p->next_send = now + (r == 0 ? BUS_RETRY_INTERVAL_MS : BUS_CONNECT_RETRY_MS);
        }
        *ret_wake = (!p->sent || p->idempotent) && p->next_send < p->end ? p->next_send : p->end;
        return 0;
}

/* Parse a reply: 0 with *ret set and *ret_id its id, <0 when malformed. */
static int reply_parse(zmsg_t *msg, uint64_t *ret_id, bus_reply_t **ret) {
        zframe_t *delim = zmsg_first(msg), *type = zmsg_next(msg), *body = zmsg_next(msg);
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        const msgpack_object *err;

        if (!delim || zframe_size(delim) != 0 || !type || !zframe_streq(type, "reply") || !body)
                return -EBADMSG;
        /* msgpack-c does not copy strings out of the bytes it unpacks: result points into them.
         * The frame dies with the message, so the reply keeps its own copy right behind it. */
        reply = calloc(1, sizeof(*reply) + zframe_size(body));
        if (!reply)
                return -ENOMEM;
        msgpack_unpacked_init(&reply->unpacked);
        memcpy(reply + 1, zframe_data(body), zframe_size(body));
        if (unpack_map(reply + 1, zframe_size(body), &reply->unpacked) < 0 ||
            mp_get_u64(&reply->unpacked.data, "id", ret_id) < 0)
                return -EBADMSG;
        err = mp_map_get(&reply->unpacked.data, "error");
        if (err) {
                if (mp_get_str(err, "code", 64, &reply->error_code) < 0)
                        reply->error_code = strdup(BUS_ERR_INTERNAL);
                if (mp_get_str(err, "message", 4096, &reply->error_message) < 0)
                        reply->error_message = strdup("(no message)");
                if (!reply->error_code || !reply->error_message)
                        return -ENOMEM;
        } else
                reply->result = mp_map_get(&reply->unpacked.data, "result");
        *ret = TAKE_PTR(reply);
        return 0;
}

/* Receive one waiting reply, if any: 0 with *ret set, -EAGAIN when none is left, -EBADMSG for
 * one that was malformed (dropped; there may be more). */
static int reply_recv(bus_client_t *c, uint64_t *ret_id, bus_reply_t **ret) {
        zmsg_t *msg;
        int r;

        if (!(zsock_events(c->sock) & ZMQ_POLLIN))
                return -EAGAIN;
        msg = zmsg_recv(c->sock);
        if (!msg)
                return -EAGAIN;
        r = reply_parse(msg, ret_id, ret);
        zmsg_destroy(&msg);
        return r;
}

int bus_call(bus_client_t *self, const char *method, const msgpack_sbuffer *args, const bus_call_opts_t *opts,
             bus_reply_t **ret) {
        bus_pending_t p = { 0 };
        int r;

        /* An attached client's replies belong to its loop. */
        if (self->loop)
                return -EBUSY;
        r = pending_init(self, &p, method, args, opts);
        for (; r == 0;) {
                uint64_t now = now_monotonic_ms(), wake, id;
                zmq_pollitem_t item = { .socket = zsock_resolve(self->sock), .events = ZMQ_POLLIN };
                bus_reply_t *reply = NULL;

                r = pending_step(self, &p, now, &wake);
                if (r < 0)
                        break;
                if (zmq_poll(&item, 1, (long)(wake > now ? wake - now : 0)) < 0) {
                        r = errno == EINTR ? 0 : -errno;
                        continue;
                }
                for (;;) {
                        int q = reply_recv(self, &id, &reply);

                        if (q == -EAGAIN)
                                break;
                        if (q == -ENOMEM) {
                                r = q;
                                break;
                        }
                        if (q == 0 && id == p.id) {
                                *ret = reply;
                                r = 1;
                                break;
                        }
                        bus_reply_free(reply); /* stale: a call given up earlier */
                        reply = NULL;
                }
        }
        msgpack_sbuffer_destroy(&p.args);
        return r == 1 ? 0 : r;
}

/* ---- requests: asynchronous client ------------------------------------------------------------ */

static int client_on_timer(zloop_t *loop, int timer_id, void *arg);

/* Send what is due, end the calls whose time is up and keep the one timer at the earliest wake
 * of the rest. The ended calls' callbacks run last, when the list is consistent again: they
 * may make or cancel calls. */
static void client_service(bus_client_t *c) {
        uint64_t now = now_monotonic_ms(), earliest = UINT64_MAX;
        bus_pending_t *ended = NULL;

        for (bus_pending_t **pp = &c->pending; *pp;) {
                bus_pending_t *p = *pp;
                uint64_t wake;
                int r = pending_step(c, p, now, &wake);

                if (r < 0) {
                        *pp = p->next;
                        p->next = ended;
                        p->error = r;
                        ended = p;
                        continue;
                }
                if (wake < earliest)
                        earliest = wake;
                pp = &p->next;
        }
        if (c->timer >= 0 && earliest != c->timer_at) {
                zloop_timer_end(c->loop, c->timer);
                c->timer = -1;
        }
        if (earliest != UINT64_MAX && c->timer < 0) {
                c->timer = zloop_timer(c->loop, earliest > now ? earliest - now : 1, 1, client_on_timer, c);
                c->timer_at = earliest;
                if (c->timer < 0)
                        log_error("bus: cannot arm a timer; calls wait for the next reply");
        }
        while (ended) {
                bus_pending_t *p = ended;

                ended = p->next;
                p->fn(p->error, NULL, p->userdata);
                pending_free(p);
        }
}

static int client_on_timer(zloop_t *loop, int timer_id, void *arg) {
        bus_client_t *c = arg;

        if (timer_id == c->timer)
                c->timer = -1; /* a one-shot timer: it is gone once it fired */
        client_service(c);
        return 0;
}

static int client_on_readable(zloop_t *loop, zsock_t *sock, void *arg) {
        bus_client_t *c = arg;

        for (;;) {
                bus_reply_t *reply = NULL;
                uint64_t id;
                int r = reply_recv(c, &id, &reply);

                if (r == -EAGAIN)
                        break;
                if (r < 0)
                        continue; /* malformed: dropped */
                for (bus_pending_t **pp = &c->pending; *pp; pp = &(*pp)->next) {
                        bus_pending_t *p = *pp;

                        if (p->id != id)
                                continue;
                        *pp = p->next;
                        p->fn(0, reply, p->userdata);
                        pending_free(p);
                        break;
                }
                bus_reply_free(reply); /* answered, or stale */
        }
        client_service(c);
        return 0;
}

int bus_client_attach(bus_client_t *self, zloop_t *loop) {
        if (self->loop)
                return -EBUSY;
        if (zloop_reader(loop, self->sock, client_on_readable, self) < 0)
                return -ENOMEM;
        self->loop = loop;
        return 0;
}

int bus_call_async(bus_client_t *self, const char *method, const msgpack_sbuffer *args, const bus_call_opts_t *opts,
                   bus_reply_fn fn, void *userdata, uint64_t *ret_id) {
        bus_pending_t *p;
        int r;

        if (!self->loop)
                return -ENOTCONN;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        r = pending_init(self, p, method, args, opts);
        if (r < 0) {
                pending_free(p);
                return r;
        }
        /* Sent now when the peer is connected. A call that cannot even start fails here, so the
         * callback never runs before this returns. */
        r = pending_step(self, p, now_monotonic_ms(), &(uint64_t){ 0 });
        if (r < 0) {
                pending_free(p);
                return r;
        }
        p->fn = fn;
        p->userdata = userdata;
        /* At the end: calls waiting for the peer to connect are sent again in the order they were made. */
        bus_pending_t **pp = &self->pending;
        while (*pp)
                pp = &(*pp)->next;
        *pp = p;
        if (ret_id)
                *ret_id = p->id;
        client_service(self);
        return 0;
}

bool bus_call_cancel(bus_client_t *self, uint64_t id) {
        for (bus_pending_t **pp = &self->pending; *pp; pp = &(*pp)->next) {
                bus_pending_t *p = *pp;

                if (p->id == id) {
                        *pp = p->next;
                        pending_free(p);
                        client_service(self);
                        return true;
                }
        }
        return false;
}

size_t bus_client_pending(const bus_client_t *self) {
        size_t n = 0;

        for (const bus_pending_t *p = self->pending; p; p = p->next)
                n++;
        return n;
}
