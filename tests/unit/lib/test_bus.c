/* test_bus.c: the bus over real ZeroMQ sockets: a ROUTER server on a zloop in its own thread,
 * DEALER clients, PUB/SUB events, and peers that are down, late or sending garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/bus.h"
#include "lib/bus_pool.h"
#include "lib/mp.h"
#include "lib/util.h"
#include "lib/stats.h"
#include "proto/schema.h"

/* Upper bound for anything that should happen "soon" (slow joiners, reconnects). */
#define SOON_MS 5000

/* ---- a zloop in a thread ----------------------------------------------------------------------- */

/* Everything the loop owns is created, attached and destroyed in the loop's thread, after
 * delay_ms: that is also how a server "comes up later". */
typedef struct looper {
        int (*setup)(struct looper *lp, zloop_t *loop);
        void (*teardown)(struct looper *lp);
        void *data;
        unsigned delay_ms;

        atomic_bool stop;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool ready;
        int setup_result;
} looper_t;

static int looper_check_stop(zloop_t *loop, int timer_id, void *arg) {
        looper_t *lp = arg;

        return atomic_load(&lp->stop) ? -1 : 0;
}

static void *looper_main(void *arg) {
        looper_t *lp = arg;
        zloop_t *loop;
        int r;

        if (lp->delay_ms)
                usleep(lp->delay_ms * 1000);
        loop = zloop_new();
        r = loop ? lp->setup(lp, loop) : -ENOMEM;
        if (r >= 0 && zloop_timer(loop, 10, 0, looper_check_stop, lp) < 0)
                r = -ENOMEM;

        pthread_mutex_lock(&lp->lock);
        lp->ready = true;
        lp->setup_result = r;
        pthread_cond_broadcast(&lp->cond);
        pthread_mutex_unlock(&lp->lock);

        if (r >= 0)
                zloop_start(loop);
        zloop_destroy(&loop);
        lp->teardown(lp);
        return NULL;
}

static void looper_start(looper_t *lp) {
        atomic_init(&lp->stop, false);
        pthread_mutex_init(&lp->lock, NULL);
        pthread_cond_init(&lp->cond, NULL);
        lp->ready = false;
        assert_int_equal(pthread_create(&lp->thread, NULL, looper_main, lp), 0);
}

static void looper_wait_ready(looper_t *lp) {
        pthread_mutex_lock(&lp->lock);
        while (!lp->ready)
                pthread_cond_wait(&lp->cond, &lp->lock);
        pthread_mutex_unlock(&lp->lock);
        assert_int_equal(lp->setup_result, 0);
}

static void looper_stop(looper_t *lp) {
        atomic_store(&lp->stop, true);
        assert_int_equal(pthread_join(lp->thread, NULL), 0);
        pthread_cond_destroy(&lp->cond);
        pthread_mutex_destroy(&lp->lock);
}

/* ---- the server under test --------------------------------------------------------------------- */

typedef struct fixture {
        char dir[64];
        char endpoint[160]; /* ipc://<dir>/run/test.requests: the run/ dir does not exist yet */
        char events[160];   /* ipc://<dir>/test.events */
        char events2[160];  /* ipc://<dir>/other.events */
        bus_server_t *server;
        looper_t looper;
        atomic_int calls; /* handler runs of "count" */
} fixture_t;

/* echo: {name: str optional} -> {hello: name or "world"} */
static int method_echo(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        _cleanup_free_ char *name = NULL;
        int r = mp_get_str(req->args, "name", 64, &name);

        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "args.name: must be a string");
        msgpack_pack_map(pk, 1);
        mp_pack_kv_str(pk, "hello", name ? name : "world");
        return 0;
}

/* get: always fails the way a handler reports a missing record. */
static int method_get(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        _cleanup_free_ char *id = NULL;

        (void)mp_get_str(req->args, "id", 64, &id);
        /* A partial result must not leak into the error reply. */
        msgpack_pack_map(pk, 1);
        return bus_request_fail(req, BUS_ERR_NOT_FOUND, "deployment %s not found", id ? id : "?");
}

/* crash: fails with an errno and no structured error. */
static int method_crash(bus_request_t *req, msgpack_packer *pk, void *userdata) { return -EIO; }

/* count: counts its runs, returns the count. */
static int method_count(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        fixture_t *f = userdata;

        msgpack_pack_uint64(pk, (uint64_t)atomic_fetch_add(&f->calls, 1) + 1);
        return 0;
}

/* slow: answers "slow" after 400 ms (the whole server waits: it is one thread). */
static int method_slow(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        usleep(400 * 1000);
        msgpack_pack_map(pk, 1);
        mp_pack_kv_str(pk, "hello", "slow");
        return 0;
}

static const bus_method_t methods[] = {
        { "echo", method_echo },   { "slow", method_slow },   { "get", method_get },
        { "crash", method_crash }, { "count", method_count }, { NULL, NULL },
};

static int server_setup(looper_t *lp, zloop_t *loop) {
        fixture_t *f = lp->data;
        int r = bus_server_new(f->endpoint, methods, f, &f->server);

        return r < 0 ? r : bus_server_attach(f->server, loop);
}

static void server_teardown(looper_t *lp) {
        fixture_t *f = lp->data;

        bus_server_destroy(&f->server);
}

static void server_start(fixture_t *f, unsigned delay_ms) {
        f->looper = (looper_t){ .setup = server_setup, .teardown = server_teardown, .data = f, .delay_ms = delay_ms };
        looper_start(&f->looper);
}

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));

        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-bus.XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->endpoint, sizeof(f->endpoint), "ipc://%s/run/test.requests", f->dir);
        snprintf(f->events, sizeof(f->events), "ipc://%s/test.events", f->dir);
        snprintf(f->events2, sizeof(f->events2), "ipc://%s/other.events", f->dir);
        atomic_init(&f->calls, 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;
        pid_t pid = fork();

        /* Not rm_rf: cleanup must not depend on lib/. */
        if (pid == 0) {
                execl("/bin/rm", "rm", "-rf", "--", f->dir, (char *)NULL);
                _exit(127);
        }
        if (pid > 0)
                waitpid(pid, NULL, 0);
        free(f);
        return 0;
}

/* ---- helpers ------------------------------------------------------------------------------------ */

static void pack_args_name(msgpack_sbuffer *buf, const char *name) {
        msgpack_packer pk;

        msgpack_sbuffer_init(buf);
        msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "name", name);
}

static int call(fixture_t *f, const char *method, const msgpack_sbuffer *args, uint64_t timeout_ms, bool idempotent,
                bus_reply_t **ret) {
        bus_client_t *c = NULL;
        bus_call_opts_t opts = { .timeout_ms = timeout_ms, .idempotent = idempotent };
        int r;

        assert_int_equal(bus_client_new(f->endpoint, &c), 0);
        r = bus_call(c, method, args, &opts, ret);
        bus_client_destroy(&c);
        assert_null(c);
        return r;
}

static void assert_hello(const bus_reply_t *reply, const char *want) {
        _cleanup_free_ char *hello = NULL;

        assert_null(reply->error_code);
        assert_null(reply->error_message);
        assert_non_null(reply->result);
        assert_int_equal(reply->result->type, MSGPACK_OBJECT_MAP);
        assert_int_equal(mp_get_str(reply->result, "hello", 64, &hello), 0);
        assert_string_equal(hello, want);
}

/* A request body {id, deadline, args?} as a client packs it. */
static void pack_request(msgpack_sbuffer *buf, uint64_t id, uint64_t deadline, bool with_args) {
        msgpack_packer pk;

        msgpack_sbuffer_init(buf);
        msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, with_args ? 3 : 2);
        mp_pack_kv_u64(&pk, "id", id);
        mp_pack_kv_u64(&pk, "deadline", deadline);
        if (with_args) {
                mp_pack_str(&pk, "args");
                msgpack_pack_map(&pk, 0);
        }
}

static zsock_t *raw_dealer(fixture_t *f) {
        zsock_t *d = zsock_new(ZMQ_DEALER);

        assert_non_null(d);
        zsock_set_linger(d, 0);
        zsock_set_rcvtimeo(d, 300);
        assert_int_equal(zsock_connect(d, "%s", f->endpoint), 0);
        return d;
}

/* Send frames given as (pointer, size) pairs, NULL-terminated. */
static void raw_send(zsock_t *d, ...) {
        zmsg_t *msg = zmsg_new();
        va_list ap;
        const void *p;

        va_start(ap, d);
        while ((p = va_arg(ap, const void *))) {
                size_t n = va_arg(ap, size_t);
                zmsg_addmem(msg, p, n);
        }
        va_end(ap);
        assert_int_equal(zmsg_send(&msg, d), 0);
}

/* Receive one reply on a raw DEALER; returns false on timeout. */
static bool raw_recv_reply(zsock_t *d, uint64_t *id, char **code, char **message) {
        zmsg_t *msg = zmsg_recv(d);
        zframe_t *body;
        msgpack_unpacked u;
        const msgpack_object *err;
        size_t off = 0;

        if (!msg)
                return false;
        assert_int_equal(zmsg_size(msg), 3);
        assert_int_equal(zframe_size(zmsg_first(msg)), 0);
        assert_true(zframe_streq(zmsg_next(msg), "reply"));
        body = zmsg_next(msg);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, (const char *)zframe_data(body), zframe_size(body), &off),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(mp_get_u64(&u.data, "id", id), 0);
        err = mp_map_get(&u.data, "error");
        assert_non_null(err);
        assert_int_equal(mp_get_str(err, "code", 64, code), 0);
        assert_int_equal(mp_get_str(err, "message", 1024, message), 0);
        msgpack_unpacked_destroy(&u);
        zmsg_destroy(&msg);
        return true;
}

/* ---- requests ---------------------------------------------------------------------------------- */

static void test_call_returns_result(void **state) {
        fixture_t *f = *state;
        bus_reply_t *reply = NULL;
        msgpack_sbuffer args;
        bus_client_t *c = NULL;

        server_start(f, 0);
        looper_wait_ready(&f->looper);

        pack_args_name(&args, "husk");
        assert_int_equal(call(f, "echo", &args, 2000, false, &reply), 0);
        assert_hello(reply, "husk");
        bus_reply_freep(&reply);
        assert_null(reply);
        msgpack_sbuffer_destroy(&args);

        /* No args: the handler sees an empty map. */
        assert_int_equal(call(f, "echo", NULL, 2000, true, &reply), 0);
        assert_hello(reply, "world");
        bus_reply_freep(&reply);

        /* One client, many calls: each reply answers its own call. */
        assert_int_equal(bus_client_new(f->endpoint, &c), 0);
        for (uint64_t i = 1; i <= 20; i++) {
                assert_int_equal(bus_call(c, "count", NULL, NULL, &reply), 0);
                assert_null(reply->error_code);
                assert_int_equal(reply->result->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
                assert_int_equal(reply->result->via.u64, i);
                bus_reply_freep(&reply);
        }
        bus_client_destroy(&c);
        bus_client_destroy(&c); /* safe twice */

        looper_stop(&f->looper);
}

static void test_ipc_socket_file(void **state) {
        fixture_t *f = *state;
        char path[PATH_MAX];
        struct stat st;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        /* The directory was made, and the socket is for owner and group only (SCHEMA.md). */
        snprintf(path, sizeof(path), "%s/run/test.requests", f->dir);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0660);
        looper_stop(&f->looper);
}

static void test_handler_error(void **state) {
        fixture_t *f = *state;
        bus_reply_t *reply = NULL;
        msgpack_sbuffer args;
        msgpack_packer pk;

        server_start(f, 0);
        looper_wait_ready(&f->looper);

        msgpack_sbuffer_init(&args);
        msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "id", "d-42");
        assert_int_equal(call(f, "get", &args, 2000, true, &reply), 0);
        msgpack_sbuffer_destroy(&args);
        assert_string_equal(reply->error_code, BUS_ERR_NOT_FOUND);
        assert_string_equal(reply->error_message, "deployment d-42 not found");
        assert_null(reply->result);
        bus_reply_freep(&reply);

        /* A handler that fails without a structured error: "internal" with the errno text. */
        assert_int_equal(call(f, "crash", NULL, 2000, true, &reply), 0);
        assert_string_equal(reply->error_code, BUS_ERR_INTERNAL);
        assert_string_equal(reply->error_message, strerror(EIO));
        assert_null(reply->result);
        bus_reply_freep(&reply);

        /* A handler rejecting its args. */
        msgpack_sbuffer_init(&args);
        msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_u64(&pk, "name", 5);
        assert_int_equal(call(f, "echo", &args, 2000, true, &reply), 0);
        msgpack_sbuffer_destroy(&args);
        assert_string_equal(reply->error_code, BUS_ERR_INVALID);
        assert_string_equal(reply->error_message, "args.name: must be a string");
        bus_reply_freep(&reply);

        /* Errors do not hurt the next call; a nil arg reads as absent. */
        pack_args_name(&args, NULL);
        assert_int_equal(call(f, "echo", &args, 2000, true, &reply), 0);
        assert_hello(reply, "world");
        bus_reply_freep(&reply);
        msgpack_sbuffer_destroy(&args);

        looper_stop(&f->looper);
}

static void test_unknown_method(void **state) {
        fixture_t *f = *state;
        bus_reply_t *reply = NULL;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        assert_int_equal(call(f, "deployment.frobnicate", NULL, 2000, false, &reply), 0);
        assert_string_equal(reply->error_code, BUS_ERR_UNKNOWN_METHOD);
        assert_string_equal(reply->error_message, "no method 'deployment.frobnicate' here");
        assert_null(reply->result);
        bus_reply_freep(&reply);
        looper_stop(&f->looper);
}

/* daemon.info is the bus's own: answered by every server though its table does not list it. */
static void assert_daemon_info(fixture_t *f, const char *daemon, uint64_t not_before_ns, uint64_t not_after_ns) {
        _cleanup_free_ char *name = NULL, *version = NULL, *host = NULL;
        char want_host[HOST_NAME_MAX + 1] = "";
        bus_reply_t *reply = NULL;
        uint64_t pid, started;

        assert_int_equal(call(f, BUS_METHOD_DAEMON_INFO, NULL, 2000, true, &reply), 0);
        assert_null(reply->error_code);
        assert_int_equal(reply->result->type, MSGPACK_OBJECT_MAP);
        assert_int_equal(reply->result->via.map.size, 5);
        assert_int_equal(mp_get_str(reply->result, "daemon", 64, &name), 0);
        assert_string_equal(name, daemon);
        assert_int_equal(mp_get_str(reply->result, "version", 64, &version), 0);
        assert_string_equal(version, HUSK_VERSION);
        assert_int_equal(mp_get_u64(reply->result, "pid", &pid), 0);
        assert_int_equal(pid, (uint64_t)getpid());
        assert_int_equal(mp_get_u64(reply->result, "started_at_ns", &started), 0);
        assert_in_range(started, not_before_ns, not_after_ns);
        assert_int_equal(mp_get_str(reply->result, "host", 256, &host), 0);
        assert_int_equal(gethostname(want_host, sizeof(want_host) - 1), 0);
        assert_string_equal(host, want_host);
        bus_reply_freep(&reply);
}

static void test_daemon_info(void **state) {
        fixture_t *f = *state;
        uint64_t before, after;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        /* Without an identity: the program's name, born no later than its first server. */
        assert_daemon_info(f, program_invocation_short_name, 1, now_realtime_ns());

        /* lib/daemon.c names the daemon and stamps its start. */
        before = now_realtime_ns();
        bus_identity_set("vmm-driver");
        after = now_realtime_ns();
        assert_daemon_info(f, "vmm-driver", before, after);
        looper_stop(&f->looper);
}

/* daemon.stats: every request counted by method when answered, errors apart, its time in the
 * method's histogram; what was never asked for under "unknown". */
static const msgpack_object *method_entry(const msgpack_object *ms, const char *name) {
        for (uint32_t k = 0; k < ms->via.array.size; k++)
                if (mp_str_eq(mp_map_get(&ms->via.array.ptr[k], "method"), name))
                        return &ms->via.array.ptr[k];
        return NULL;
}

static void assert_counted(const msgpack_object *ms, const char *name, uint64_t count, uint64_t errors) {
        const msgpack_object *e = method_entry(ms, name), *buckets;
        uint64_t n = 0, err = 0, total = 0;

        if (!e)
                fail_msg("no entry for %s", name);
        assert_int_equal(mp_get_u64(e, "count", &n), 0);
        assert_int_equal(mp_get_u64(e, "errors", &err), 0);
        if (n != count || err != errors)
                fail_msg("%s: %" PRIu64 " requests, %" PRIu64 " errors; want %" PRIu64 ", %" PRIu64, name, n, err,
                         count, errors);
        buckets = mp_map_get(e, "buckets");
        assert_int_equal(buckets->via.array.size, STATS_N_BOUNDS + 1);
        for (uint32_t k = 0; k < buckets->via.array.size; k++)
                total += buckets->via.array.ptr[k].via.u64;
        assert_int_equal(total, count);
}

static void test_daemon_stats(void **state) {
        fixture_t *f = *state;
        bus_reply_t *reply = NULL;
        proto_error_t e = {};
        const msgpack_object *ms, *slow;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        for (int k = 0; k < 2; k++) {
                assert_int_equal(call(f, "echo", NULL, 2000, true, &reply), 0);
                bus_reply_freep(&reply);
        }
        assert_int_equal(call(f, "get", NULL, 2000, true, &reply), 0);
        bus_reply_freep(&reply);
        assert_int_equal(call(f, "slow", NULL, 2000, true, &reply), 0);
        bus_reply_freep(&reply);
        assert_int_equal(call(f, "nope", NULL, 2000, true, &reply), 0);
        bus_reply_freep(&reply);

        assert_int_equal(call(f, BUS_METHOD_DAEMON_STATS, NULL, 2000, true, &reply), 0);
        assert_null(reply->error_code);
        if (proto_check(&proto_msg_daemon_stats_result, reply->result, PROTO_CHECK_STRICT, &e) < 0)
                fail_msg("%s", e.message);
        ms = mp_map_get(reply->result, "methods");
        assert_counted(ms, "echo", 2, 0);
        assert_counted(ms, "get", 1, 1);
        assert_counted(ms, "crash", 0, 0);
        assert_counted(ms, "unknown", 1, 1);
        assert_counted(ms, BUS_METHOD_DAEMON_INFO, 0, 0);
        /* The daemon.stats being answered is counted once it is: not in its own answer. */
        assert_counted(ms, BUS_METHOD_DAEMON_STATS, 0, 0);
        /* slow took 400 ms: in the bucket of le=0.5, above 0.25. */
        slow = mp_map_get(method_entry(ms, "slow"), "buckets");
        assert_int_equal(slow->via.array.ptr[11].via.u64, 1);
        assert_true(stats_bounds[11] == 0.5 && stats_bounds[10] == 0.25);
        assert_int_equal(mp_map_get(reply->result, "metrics")->via.array.size, 0);
        bus_reply_freep(&reply);
        looper_stop(&f->looper);
}

static void test_no_server_times_out(void **state) {
        fixture_t *f = *state;

        for (int idempotent = 0; idempotent <= 1; idempotent++) {
                bus_reply_t *reply = NULL;
                uint64_t start = now_monotonic_ms(), elapsed;

                assert_int_equal(call(f, "echo", NULL, 300, idempotent, &reply), -ETIMEDOUT);
                elapsed = now_monotonic_ms() - start;
                assert_null(reply);
                assert_true(elapsed >= 300);
                assert_true(elapsed < 1300);
        }
}

static void test_server_comes_up_late(void **state) {
        fixture_t *f = *state;
        bus_reply_t *reply = NULL;
        msgpack_sbuffer args;
        uint64_t start = now_monotonic_ms();

        /* The call is made while nothing listens; the server binds 500 ms later. */
        server_start(f, 500);
        pack_args_name(&args, "late");
        assert_int_equal(call(f, "echo", &args, SOON_MS, true, &reply), 0);
        msgpack_sbuffer_destroy(&args);
        assert_true(now_monotonic_ms() - start >= 500);
        assert_hello(reply, "late");
        bus_reply_freep(&reply);
        looper_stop(&f->looper);
}

static void test_given_up_call_never_runs(void **state) {
        fixture_t *f = *state;
        bus_call_opts_t quick = { .timeout_ms = 200 }, normal = { .timeout_ms = 2000 };
        bus_reply_t *reply = NULL;
        bus_client_t *c = NULL;

        /* The caller gives up before the server is there: when the server comes up, it must not
         * run the call (it may have been "create this VM"), even though the caller is still
         * connected. */
        server_start(f, 600);
        assert_int_equal(bus_client_new(f->endpoint, &c), 0);
        assert_int_equal(bus_call(c, "count", NULL, &quick, &reply), -ETIMEDOUT);
        looper_wait_ready(&f->looper);
        usleep(300 * 1000);
        assert_int_equal(atomic_load(&f->calls), 0);

        assert_int_equal(bus_call(c, "count", NULL, &normal, &reply), 0);
        assert_int_equal(reply->result->via.u64, 1);
        bus_reply_freep(&reply);
        bus_client_destroy(&c);
        looper_stop(&f->looper);
}

static void test_late_reply_ignored(void **state) {
        fixture_t *f = *state;
        bus_call_opts_t quick = { .timeout_ms = 150 }, normal = { .timeout_ms = 3000 };
        bus_reply_t *reply = NULL;
        bus_client_t *c = NULL;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        assert_int_equal(bus_client_new(f->endpoint, &c), 0);
        /* The answer to the abandoned call arrives while the next call waits: it must not be
         * taken for the answer to that one. */
        assert_int_equal(bus_call(c, "slow", NULL, &quick, &reply), -ETIMEDOUT);
        assert_null(reply);
        assert_int_equal(bus_call(c, "echo", NULL, &normal, &reply), 0);
        assert_hello(reply, "world");
        bus_reply_freep(&reply);
        bus_client_destroy(&c);
        looper_stop(&f->looper);
}

static void test_expired_deadline_dropped(void **state) {
        fixture_t *f = *state;
        zsock_t *d;
        msgpack_sbuffer body;
        uint64_t id = 0;
        char *code = NULL, *message = NULL;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        d = raw_dealer(f);

        /* Queued past its deadline: dropped without an answer and without running. */
        pack_request(&body, 7, now_realtime_ms() - 1000, true);
        raw_send(d, "", (size_t)0, "count", (size_t)5, body.data, body.size, NULL);
        msgpack_sbuffer_destroy(&body);
        assert_false(raw_recv_reply(d, &id, &code, &message));
        assert_int_equal(atomic_load(&f->calls), 0);

        /* The same with a live deadline runs and answers (as a result, not an error). */
        pack_request(&body, 8, now_realtime_ms() + 5000, true);
        raw_send(d, "", (size_t)0, "count", (size_t)5, body.data, body.size, NULL);
        msgpack_sbuffer_destroy(&body);
        zsock_set_rcvtimeo(d, SOON_MS);
        {
                zmsg_t *msg = zmsg_recv(d);
                assert_non_null(msg);
                assert_int_equal(zmsg_size(msg), 3);
                zmsg_destroy(&msg);
        }
        assert_int_equal(atomic_load(&f->calls), 1);

        zsock_destroy(&d);
        looper_stop(&f->looper);
}

static void test_malformed_requests(void **state) {
        static const uint8_t garbage[] = { 0xc1, 'g', 'a', 'r', 'b', 'a', 'g', 'e' };
        static const uint8_t array[] = { 0x92, 0x01, 0x02 };                 /* [1, 2] */
        static const uint8_t id_str[] = { 0x81, 0xa2, 'i', 'd', 0xa1, 'x' }; /* {id: "x"} */
        static const uint8_t truncated[] = { 0x83, 0xa2, 'i', 'd' };
        char long_method[BUS_TYPE_MAX + 2];
        fixture_t *f = *state;
        bus_reply_t *reply = NULL;
        msgpack_sbuffer good, trailing;
        zsock_t *d;
        uint64_t id = 0;
        char *code = NULL, *message = NULL;
        uint8_t *huge;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        d = raw_dealer(f);

        memset(long_method, 'm', sizeof(long_method) - 1);
        long_method[sizeof(long_method) - 1] = '\0';
        pack_request(&good, 1, now_realtime_ms() + 60000, true);
        msgpack_sbuffer_init(&trailing);
        msgpack_sbuffer_write(&trailing, good.data, good.size);
        msgpack_sbuffer_write(&trailing, "\x01", 1);
        huge = calloc(1, MP_MAX_MESSAGE_BYTES + 1);
        assert_non_null(huge);

        /* Bodies that are not a request map, behind a well-formed envelope. */
        raw_send(d, "", (size_t)0, "count", (size_t)5, garbage, sizeof(garbage), NULL);
        raw_send(d, "", (size_t)0, "count", (size_t)5, array, sizeof(array), NULL);
        raw_send(d, "", (size_t)0, "count", (size_t)5, id_str, sizeof(id_str), NULL);
        raw_send(d, "", (size_t)0, "count", (size_t)5, truncated, sizeof(truncated), NULL);
        raw_send(d, "", (size_t)0, "count", (size_t)5, "", (size_t)0, NULL);
        raw_send(d, "", (size_t)0, "count", (size_t)5, trailing.data, trailing.size, NULL);
        raw_send(d, "", (size_t)0, "count", (size_t)5, huge, (size_t)MP_MAX_MESSAGE_BYTES + 1, NULL);
        raw_send(d, "", (size_t)0, "count", (size_t)5, "\x93", (size_t)1, NULL);
        /* Broken envelopes. */
        raw_send(d, "count", (size_t)5, NULL);
        raw_send(d, "", (size_t)0, NULL);
        raw_send(d, "", (size_t)0, "count", (size_t)5, NULL);
        raw_send(d, "", (size_t)0, "count", (size_t)5, good.data, good.size, "extra", (size_t)5, NULL);
        raw_send(d, "", (size_t)0, "", (size_t)0, good.data, good.size, NULL);
        raw_send(d, "", (size_t)0, long_method, strlen(long_method), good.data, good.size, NULL);
        raw_send(d, "", (size_t)0, "co\0unt", (size_t)6, good.data, good.size, NULL);
        free(huge);

        /* Each body-level mistake is answered with "invalid" (the caller gets an error, not a
         * time-out); the broken envelopes are dropped. None of them ran the handler. */
        zsock_set_rcvtimeo(d, SOON_MS);
        for (int i = 0; i < 8; i++) {
                if (!raw_recv_reply(d, &id, &code, &message))
                        fail_msg("no reply to malformed request %d", i);
                assert_string_equal(code, BUS_ERR_INVALID);
                assert_int_equal(id, 0);
                free(code);
                free(message);
        }
        zsock_set_rcvtimeo(d, 300);
        assert_false(raw_recv_reply(d, &id, &code, &message));
        assert_int_equal(atomic_load(&f->calls), 0);

        /* The server is still there. */
        assert_int_equal(call(f, "echo", NULL, 2000, false, &reply), 0);
        assert_hello(reply, "world");
        bus_reply_freep(&reply);

        msgpack_sbuffer_destroy(&good);
        msgpack_sbuffer_destroy(&trailing);
        zsock_destroy(&d);
        looper_stop(&f->looper);
}

static void test_invalid_request_explained(void **state) {
        fixture_t *f = *state;
        zsock_t *d;
        msgpack_sbuffer body;
        msgpack_packer pk;
        uint64_t id = 0;
        char *code = NULL, *message = NULL;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        d = raw_dealer(f);
        zsock_set_rcvtimeo(d, SOON_MS);

        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        mp_pack_kv_u64(&pk, "id", 9);
        mp_pack_kv_u64(&pk, "deadline", now_realtime_ms() + 60000);
        mp_pack_kv_str(&pk, "args", "not a map");
        raw_send(d, "", (size_t)0, "echo", (size_t)4, body.data, body.size, NULL);
        msgpack_sbuffer_destroy(&body);
        assert_true(raw_recv_reply(d, &id, &code, &message));
        assert_int_equal(id, 9);
        assert_string_equal(code, BUS_ERR_INVALID);
        assert_string_equal(message, "'args' must be a map");
        free(code);
        free(message);

        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_u64(&pk, "id", 10);
        raw_send(d, "", (size_t)0, "echo", (size_t)4, body.data, body.size, NULL);
        msgpack_sbuffer_destroy(&body);
        assert_true(raw_recv_reply(d, &id, &code, &message));
        assert_int_equal(id, 10);
        assert_string_equal(code, BUS_ERR_INVALID);
        assert_string_equal(message, "request needs uint 'id' and 'deadline'");
        free(code);
        free(message);

        zsock_destroy(&d);
        looper_stop(&f->looper);
}

/* ---- asynchronous calls ------------------------------------------------------------------------ */

/* A client on a loop in the test's own thread, as a daemon has it. The loop runs until every
 * call the test counts on has ended, or SOON_MS passed (a failure). */
typedef struct async_call {
        int error; /* what the callback was given */
        bool ended;
        uint64_t result;   /* count's answer */
        char hello[32];    /* echo's answer */
        char code[32];     /* a remote error's code */
        uint64_t ended_at; /* monotonic ms */
        struct async_rig *rig;
        struct async_call *chain; /* make this call from this one's callback */
} async_call_t;

typedef struct async_rig {
        zloop_t *loop;
        bus_client_t *client;
        int want;  /* callbacks still to come */
        int ticks; /* loop turns while waiting: the loop was never blocked */
        uint64_t give_up;
} async_rig_t;

static void on_async_reply(int error, const bus_reply_t *reply, void *userdata);

static void async_start(async_rig_t *rig, async_call_t *call, const char *method, const msgpack_sbuffer *args,
                        uint64_t timeout_ms, bool idempotent) {
        bus_call_opts_t opts = { .timeout_ms = timeout_ms, .idempotent = idempotent };

        call->rig = rig;
        rig->want++;
        assert_int_equal(bus_call_async(rig->client, method, args, &opts, on_async_reply, call, NULL), 0);
}

static void on_async_reply(int error, const bus_reply_t *reply, void *userdata) {
        async_call_t *call = userdata;
        _cleanup_free_ char *hello = NULL;

        assert_false(call->ended); /* exactly once */
        call->ended = true;
        call->error = error;
        call->ended_at = now_monotonic_ms();
        call->rig->want--;
        if (error == 0) {
                assert_non_null(reply);
                if (reply->error_code)
                        snprintf(call->code, sizeof(call->code), "%s", reply->error_code);
                else if (reply->result->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                        call->result = reply->result->via.u64;
                else if (mp_get_str(reply->result, "hello", 32, &hello) == 0)
                        snprintf(call->hello, sizeof(call->hello), "%s", hello);
        } else
                assert_null(reply);
        if (call->chain)
                async_start(call->rig, call->chain, "count", NULL, 2000, false);
}

static int async_tick(zloop_t *loop, int timer_id, void *arg) {
        async_rig_t *rig = arg;

        rig->ticks++;
        return rig->want == 0 || now_monotonic_ms() >= rig->give_up ? -1 : 0;
}

static void async_rig_open(fixture_t *f, async_rig_t *rig) {
        *rig = (async_rig_t){ .loop = zloop_new() };
        assert_non_null(rig->loop);
        assert_int_equal(bus_client_new(f->endpoint, &rig->client), 0);
        assert_int_equal(bus_client_attach(rig->client, rig->loop), 0);
        assert_true(zloop_timer(rig->loop, 10, 0, async_tick, rig) >= 0);
}

static void async_run(async_rig_t *rig) {
        rig->give_up = now_monotonic_ms() + SOON_MS;
        zloop_start(rig->loop);
        assert_int_equal(rig->want, 0);
}

static void async_rig_close(async_rig_t *rig) {
        bus_client_destroy(&rig->client);
        zloop_destroy(&rig->loop);
}

static void test_async_calls_answered(void **state) {
        fixture_t *f = *state;
        async_call_t echo = { 0 }, missing = { 0 }, counts[20] = { 0 }, first = { 0 }, second = { 0 };
        async_rig_t rig;
        msgpack_sbuffer args;
        bool seen[22] = { false };

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        async_rig_open(f, &rig);

        /* Many calls in flight on one client at once: each callback gets its own answer. */
        pack_args_name(&args, "async");
        async_start(&rig, &echo, "echo", &args, 2000, false);
        msgpack_sbuffer_destroy(&args); /* the call keeps its own copy */
        async_start(&rig, &missing, "get", NULL, 2000, true);
        for (size_t i = 0; i < 20; i++)
                async_start(&rig, &counts[i], "count", NULL, 2000, false);
        /* A callback may start the next call. */
        first.chain = &second;
        async_start(&rig, &first, "count", NULL, 2000, false);
        assert_int_equal(bus_client_pending(rig.client), 23);
        /* Nothing ran yet: callbacks come from the loop only. */
        assert_false(echo.ended);
        async_run(&rig);

        assert_int_equal(echo.error, 0);
        assert_string_equal(echo.hello, "async");
        assert_int_equal(missing.error, 0);
        assert_string_equal(missing.code, BUS_ERR_NOT_FOUND);
        /* The server counted 22 calls, each answered to its own caller: the order they went out
         * in is the client's (calls made before the connection is up leave together). */
        for (size_t i = 0; i < 20; i++) {
                assert_int_equal(counts[i].error, 0);
                assert_in_range(counts[i].result, 1, 22);
                assert_false(seen[counts[i].result - 1]);
                seen[counts[i].result - 1] = true;
        }
        assert_true(first.ended && second.ended);
        assert_in_range(first.result, 1, 22);
        assert_false(seen[first.result - 1]);
        seen[first.result - 1] = true;
        /* The chained call went out after the first's answer. */
        assert_in_range(second.result, first.result + 1, 22);
        assert_false(seen[second.result - 1]);
        assert_int_equal(bus_client_pending(rig.client), 0);
        /* An attached client's replies belong to its loop. */
        assert_int_equal(bus_call(rig.client, "echo", NULL, NULL, &(bus_reply_t *){ NULL }), -EBUSY);
        assert_int_equal(bus_client_attach(rig.client, rig.loop), -EBUSY);
        async_rig_close(&rig);
        looper_stop(&f->looper);
}

static void test_async_timeout_never_blocks_the_loop(void **state) {
        fixture_t *f = *state;
        async_call_t once = { 0 }, retried = { 0 };
        async_rig_t rig;
        uint64_t start;

        /* Nobody listens: both calls end at their deadline, and the loop keeps turning. */
        async_rig_open(f, &rig);
        start = now_monotonic_ms();
        async_start(&rig, &once, "echo", NULL, 300, false);
        async_start(&rig, &retried, "echo", NULL, 600, true);
        async_run(&rig);
        assert_int_equal(once.error, -ETIMEDOUT);
        assert_int_equal(retried.error, -ETIMEDOUT);
        assert_true(once.ended_at - start >= 300);
        assert_true(retried.ended_at - start >= 600);
        assert_true(retried.ended_at - start < 1600);
        /* 10 ms ticks over 600 ms: the loop was free the whole time. */
        assert_true(rig.ticks >= 20);
        async_rig_close(&rig);

        /* Not attached: an asynchronous call cannot start. */
        {
                bus_client_t *c = NULL;

                assert_int_equal(bus_client_new(f->endpoint, &c), 0);
                assert_int_equal(bus_call_async(c, "echo", NULL, NULL, on_async_reply, &once, NULL), -ENOTCONN);
                bus_client_destroy(&c);
        }
}

static void test_async_server_comes_up_late(void **state) {
        fixture_t *f = *state;
        async_call_t late = { 0 };
        async_rig_t rig;
        uint64_t start = now_monotonic_ms();

        server_start(f, 500);
        async_rig_open(f, &rig);
        async_start(&rig, &late, "echo", NULL, SOON_MS - 500, true);
        async_run(&rig);
        assert_int_equal(late.error, 0);
        assert_string_equal(late.hello, "world");
        assert_true(late.ended_at - start >= 500);
        async_rig_close(&rig);
        looper_stop(&f->looper);
}

static void test_async_cancel_and_destroy(void **state) {
        fixture_t *f = *state;
        async_call_t cancelled = { 0 }, kept = { 0 }, dropped = { 0 };
        bus_call_opts_t opts = { .timeout_ms = 2000 };
        async_rig_t rig;
        uint64_t id;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        async_rig_open(f, &rig);

        /* A cancelled call's callback never runs, and its reply is dropped. */
        cancelled.rig = &rig;
        assert_int_equal(bus_call_async(rig.client, "count", NULL, &opts, on_async_reply, &cancelled, &id), 0);
        assert_true(bus_call_cancel(rig.client, id));
        assert_false(bus_call_cancel(rig.client, id));
        async_start(&rig, &kept, "count", NULL, 2000, false);
        async_run(&rig);
        assert_false(cancelled.ended);
        assert_true(kept.ended);
        assert_int_equal(kept.error, 0);

        /* Destroying the client ends what is still waiting, once, with -ECANCELED. */
        async_start(&rig, &dropped, "slow", NULL, 2000, false);
        async_rig_close(&rig);
        assert_true(dropped.ended);
        assert_int_equal(dropped.error, -ECANCELED);
        looper_stop(&f->looper);
}

/* ---- a pool of synchronous clients --------------------------------------------------------------- */

typedef struct pool_worker {
        bus_pool_t *pool;
        pthread_t thread;
        int failures;
} pool_worker_t;

static void *pool_worker_main(void *arg) {
        pool_worker_t *w = arg;

        for (int i = 0; i < 10; i++) {
                bus_reply_t *reply = NULL;

                if (bus_pool_call(w->pool, "count", NULL, &(bus_call_opts_t){ .timeout_ms = SOON_MS }, &reply) < 0 ||
                    reply->error_code)
                        w->failures++;
                bus_reply_free(reply);
        }
        return NULL;
}

static void test_pool_calls_from_many_threads(void **state) {
        fixture_t *f = *state;
        pool_worker_t workers[16];
        bus_pool_t *pool = NULL;

        server_start(f, 0);
        looper_wait_ready(&f->looper);
        assert_int_equal(bus_pool_new(f->endpoint, 4, &pool), 0);
        for (size_t i = 0; i < ELEMENTSOF(workers); i++) {
                workers[i] = (pool_worker_t){ .pool = pool };
                assert_int_equal(pthread_create(&workers[i].thread, NULL, pool_worker_main, &workers[i]), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(workers); i++) {
                assert_int_equal(pthread_join(workers[i].thread, NULL), 0);
                assert_int_equal(workers[i].failures, 0);
        }
        /* Every call ran exactly once. */
        assert_int_equal(atomic_load(&f->calls), 160);
        bus_pool_destroy(&pool);
        bus_pool_destroy(&pool); /* safe twice */
        looper_stop(&f->looper);
}

/* ---- events ------------------------------------------------------------------------------------- */

static void pack_n(msgpack_sbuffer *buf, uint64_t n) {
        msgpack_packer pk;

        msgpack_sbuffer_init(buf);
        msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_u64(&pk, "n", n);
}

static uint64_t body_n(const void *body, size_t size) {
        msgpack_unpacked u;
        size_t off = 0;
        uint64_t n = UINT64_MAX;

        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, body, size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(mp_get_u64(&u.data, "n", &n), 0);
        msgpack_unpacked_destroy(&u);
        return n;
}

static void test_pub_sub_prefix(void **state) {
        fixture_t *f = *state;
        const char *endpoints[] = { f->events, f->events2 };
        bus_pub_t *pub_a = NULL, *pub_b = NULL;
        bus_sub_t *sub = NULL;
        bool got_deleted = false, got_exited = false;
        uint64_t deadline = now_monotonic_ms() + SOON_MS;

        assert_int_equal(bus_pub_new(f->events, &pub_a), 0);
        assert_int_equal(bus_pub_new(f->events2, &pub_b), 0);
        assert_int_equal(bus_sub_new(endpoints, 2, &sub), 0);
        assert_int_equal(bus_sub_subscribe(sub, "instance."), 0);
        assert_int_equal(bus_sub_subscribe(sub, "deployment.deleted"), 0);

        /* Subscriptions take a moment to reach the publishers: publish until both wanted events
         * arrived from both publishers, and check that nothing else ever does. */
        for (uint64_t round = 1; !(got_deleted && got_exited); round++) {
                msgpack_sbuffer b;
                char *type = NULL;
                void *body = NULL;
                size_t size = 0;
                int r;

                if (now_monotonic_ms() > deadline)
                        fail_msg("events not delivered within %d ms", SOON_MS);
                pack_n(&b, round);
                assert_int_equal(bus_pub_send(pub_a, "deployment.created", b.data, b.size), 0);
                assert_int_equal(bus_pub_send(pub_a, "deployment.deleted", b.data, b.size), 0);
                assert_int_equal(bus_pub_send(pub_b, "node.joined", b.data, b.size), 0);
                assert_int_equal(bus_pub_send(pub_b, "instance.exited", b.data, b.size), 0);
                assert_int_equal(bus_pub_send(pub_b, "instanceX", b.data, b.size), 0);
                msgpack_sbuffer_destroy(&b);

                while ((r = bus_sub_recv(sub, 50, &type, &body, &size)) == 0) {
                        if (streq(type, "deployment.deleted"))
                                got_deleted = true;
                        else if (streq(type, "instance.exited"))
                                got_exited = true;
                        else
                                fail_msg("received filtered event %s", type);
                        /* The body arrives as sent. */
                        assert_true(body_n(body, size) <= round);
                        free(type);
                        free(body);
                }
                assert_int_equal(r, -ETIMEDOUT);
        }

        bus_sub_destroy(&sub);
        bus_sub_destroy(&sub);
        bus_pub_destroy(&pub_a);
        bus_pub_destroy(&pub_b);
        bus_pub_destroy(&pub_b);
        assert_null(pub_b);
}

static void test_sub_recv_timeout(void **state) {
        fixture_t *f = *state;
        const char *endpoints[] = { f->events };
        bus_sub_t *sub = NULL;
        char *type = NULL;
        void *body = NULL;
        size_t size = 0;
        uint64_t start, elapsed;

        assert_int_equal(bus_sub_new(endpoints, 1, &sub), 0);
        assert_int_equal(bus_sub_subscribe(sub, ""), 0);
        start = now_monotonic_ms();
        assert_int_equal(bus_sub_recv(sub, 200, &type, &body, &size), -ETIMEDOUT);
        elapsed = now_monotonic_ms() - start;
        assert_true(elapsed >= 200 && elapsed < 1200);
        assert_null(type);
        assert_null(body);
        bus_sub_destroy(&sub);
}

/* The subscriber side of test_sub_attach_drops_malformed: runs in the loop thread. */
typedef struct sub_state {
        const char *endpoint;
        bus_sub_t *sub;
        pthread_mutex_t lock;
        unsigned good, bad;
        uint64_t last_n;
        bool saw_non_map;
} sub_state_t;

static void on_event(const char *type, const msgpack_object *body, void *userdata) {
        sub_state_t *s = userdata;
        uint64_t n = 0;

        pthread_mutex_lock(&s->lock);
        if (body->type != MSGPACK_OBJECT_MAP)
                s->saw_non_map = true;
        if (streq(type, "instance.good") && mp_get_u64(body, "n", &n) == 0) {
                s->good++;
                s->last_n = n;
        } else
                s->bad++;
        pthread_mutex_unlock(&s->lock);
}

static int sub_setup(looper_t *lp, zloop_t *loop) {
        sub_state_t *s = lp->data;
        const char *endpoints[] = { s->endpoint };
        int r = bus_sub_new(endpoints, 1, &s->sub);

        if (r < 0)
                return r;
        bus_sub_subscribe(s->sub, "instance.");
        return bus_sub_attach(s->sub, loop, on_event, s);
}

static void sub_teardown(looper_t *lp) {
        sub_state_t *s = lp->data;

        bus_sub_destroy(&s->sub);
}

static uint64_t sub_last_n(sub_state_t *s) {
        uint64_t n;

        pthread_mutex_lock(&s->lock);
        n = s->last_n;
        pthread_mutex_unlock(&s->lock);
        return n;
}

static void publish_malformed(bus_pub_t *pub) {
        static const uint8_t array[] = { 0x91, 0x01 };
        static const uint8_t garbage[] = { 0xc1, 0xc1 };
        static const uint8_t truncated[] = { 0x81, 0xa1 };
        static const uint8_t trailing[] = { 0x80, 0x80 };
        static const uint8_t str[] = { 0xa3, 'a', 'b', 'c' };

        assert_int_equal(bus_pub_send(pub, "instance.bad", array, sizeof(array)), 0);
        assert_int_equal(bus_pub_send(pub, "instance.bad", garbage, sizeof(garbage)), 0);
        assert_int_equal(bus_pub_send(pub, "instance.bad", truncated, sizeof(truncated)), 0);
        assert_int_equal(bus_pub_send(pub, "instance.bad", trailing, sizeof(trailing)), 0);
        assert_int_equal(bus_pub_send(pub, "instance.bad", str, sizeof(str)), 0);
        assert_int_equal(bus_pub_send(pub, "instance.bad", "", 0), 0);
}

static void publish_n(bus_pub_t *pub, uint64_t n) {
        msgpack_sbuffer b;

        pack_n(&b, n);
        assert_int_equal(bus_pub_send(pub, "instance.good", b.data, b.size), 0);
        msgpack_sbuffer_destroy(&b);
}

static void test_sub_attach_drops_malformed(void **state) {
        fixture_t *f = *state;
        sub_state_t s = { .endpoint = f->events };
        looper_t lp = { .setup = sub_setup, .teardown = sub_teardown, .data = &s };
        bus_pub_t *pub = NULL;
        uint64_t deadline = now_monotonic_ms() + SOON_MS, n;

        pthread_mutex_init(&s.lock, NULL);
        assert_int_equal(bus_pub_new(f->events, &pub), 0);
        looper_start(&lp);
        looper_wait_ready(&lp);

        /* Until the subscription is through, everything may be lost: publish until it is. */
        for (n = 1; sub_last_n(&s) == 0; n++) {
                if (now_monotonic_ms() > deadline)
                        fail_msg("no event delivered within %d ms", SOON_MS);
                publish_n(pub, n);
                usleep(20 * 1000);
        }
        /* Now connected, and one connection keeps order: the malformed events reach the
         * subscriber before the final good one, are dropped, and delivery goes on. */
        publish_malformed(pub);
        publish_n(pub, 1000000);
        publish_malformed(pub);
        publish_n(pub, 1000001);
        while (sub_last_n(&s) != 1000001) {
                if (now_monotonic_ms() > deadline)
                        fail_msg("events after malformed ones not delivered within %d ms", SOON_MS);
                usleep(10 * 1000);
        }

        looper_stop(&lp);
        assert_int_equal(s.bad, 0);
        assert_false(s.saw_non_map);
        assert_true(s.good >= 2);
        bus_pub_destroy(&pub);
        pthread_mutex_destroy(&s.lock);
}

/* bus_pub_send from several threads: every event arrives whole (no interleaved frames). */
typedef struct pub_worker {
        bus_pub_t *pub;
        unsigned k;
        pthread_t thread;
} pub_worker_t;

#define PUB_THREADS 4
#define PUB_EVENTS 200

static void *pub_worker_main(void *arg) {
        pub_worker_t *w = arg;
        char type[16];

        snprintf(type, sizeof(type), "t.%u", w->k);
        for (uint64_t i = 0; i < PUB_EVENTS; i++) {
                msgpack_sbuffer b;
                pack_n(&b, w->k * 1000 + i);
                if (bus_pub_send(w->pub, type, b.data, b.size) < 0)
                        abort();
                msgpack_sbuffer_destroy(&b);
        }
        return NULL;
}

static void test_pub_threads(void **state) {
        fixture_t *f = *state;
        const char *endpoints[] = { f->events };
        pub_worker_t workers[PUB_THREADS];
        unsigned count[PUB_THREADS] = { 0 }, total = 0;
        bus_pub_t *pub = NULL;
        bus_sub_t *sub = NULL;
        uint64_t deadline = now_monotonic_ms() + SOON_MS;
        bool synced = false;

        assert_int_equal(bus_pub_new(f->events, &pub), 0);
        assert_int_equal(bus_sub_new(endpoints, 1, &sub), 0);
        assert_int_equal(bus_sub_subscribe(sub, "t."), 0);
        while (!synced) {
                char *type = NULL;
                void *body = NULL;
                size_t size;
                msgpack_sbuffer b;

                if (now_monotonic_ms() > deadline)
                        fail_msg("subscription not through within %d ms", SOON_MS);
                pack_n(&b, 0);
                assert_int_equal(bus_pub_send(pub, "t.sync", b.data, b.size), 0);
                msgpack_sbuffer_destroy(&b);
                if (bus_sub_recv(sub, 20, &type, &body, &size) == 0) {
                        synced = true;
                        free(type);
                        free(body);
                }
        }
        for (unsigned k = 0; k < PUB_THREADS; k++) {
                workers[k] = (pub_worker_t){ .pub = pub, .k = k };
                assert_int_equal(pthread_create(&workers[k].thread, NULL, pub_worker_main, &workers[k]), 0);
        }
        while (total < PUB_THREADS * PUB_EVENTS) {
                char *type = NULL;
                void *body = NULL;
                size_t size;
                unsigned k;
                uint64_t n;

                if (bus_sub_recv(sub, 1000, &type, &body, &size) < 0)
                        break;
                if (streq(type, "t.sync")) {
                        free(type);
                        free(body);
                        continue;
                }
                assert_int_equal(sscanf(type, "t.%u", &k), 1);
                assert_true(k < PUB_THREADS);
                n = body_n(body, size);
                /* The body belongs to the type it came with, in each thread's order. */
                assert_int_equal(n / 1000, k);
                assert_int_equal(n % 1000, count[k]);
                count[k]++;
                total++;
                free(type);
                free(body);
        }
        for (unsigned k = 0; k < PUB_THREADS; k++)
                assert_int_equal(pthread_join(workers[k].thread, NULL), 0);
        assert_int_equal(total, PUB_THREADS * PUB_EVENTS);
        bus_sub_destroy(&sub);
        bus_pub_destroy(&pub);
}

static void test_bind_failure(void **state) {
        fixture_t *f = *state;
        char file[256], endpoint[PATH_MAX];
        bus_pub_t *pub = NULL;
        bus_server_t *server = NULL;
        FILE *fp;

        /* The directory of an ipc endpoint cannot be made: the daemon learns why. */
        snprintf(file, sizeof(file), "%s/file", f->dir);
        fp = fopen(file, "we");
        assert_non_null(fp);
        fclose(fp);
        snprintf(endpoint, sizeof(endpoint), "ipc://%s/sub/x.events", file);
        assert_int_equal(bus_pub_new(endpoint, &pub), -ENOTDIR);
        assert_null(pub);
        assert_int_equal(bus_server_new(endpoint, methods, f, &server), -ENOTDIR);
        assert_null(server);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_call_returns_result),
                T(test_ipc_socket_file),
                T(test_handler_error),
                T(test_unknown_method),
                T(test_daemon_info),
                T(test_daemon_stats),
                T(test_no_server_times_out),
                T(test_server_comes_up_late),
                T(test_given_up_call_never_runs),
                T(test_late_reply_ignored),
                T(test_expired_deadline_dropped),
                T(test_malformed_requests),
                T(test_invalid_request_explained),
                T(test_async_calls_answered),
                T(test_async_timeout_never_blocks_the_loop),
                T(test_async_server_comes_up_late),
                T(test_async_cancel_and_destroy),
                T(test_pool_calls_from_many_threads),
                T(test_pub_sub_prefix),
                T(test_sub_recv_timeout),
                T(test_sub_attach_drops_malformed),
                T(test_pub_threads),
                T(test_bind_failure),
        };

        /* As the daemons do: signals are theirs to handle, not czmq's. */
        zsys_handler_set(NULL);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
