/* vmm_qemu_template.c: templates on qemu: boot a kit VM with its RAM in a file, save it at agent-ready with x-ignore-shared; restore a clone with -incoming defer. Each call blocks (a thread's). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/agent_identity.h"
#include "services/vmm-driver/vmm_qemu.h"

#define BOOT_TIMEOUT_MS 240000 /* a TCG boot on a host this loaded took 22 s; a template is made once */
#define SAVE_TIMEOUT_MS 60000
#define LINE_MAX_ 65536
/* A template's NIC: its MAC until a clone's agent sets the clone's own. */
#define TEMPLATE_MAC "52:54:00:00:00:01"
#define WARM_UP_ENTROPY 64 /* bytes, as an instance's identity has */

/* ---- a blocking unix stream with a deadline -------------------------------------------------- */

typedef struct conn {
        int fd;
        uint64_t deadline_ms;
        char buf[LINE_MAX_];
        size_t len;
} conn_t;

/* Connect to dir/name, retrying while QEMU has not made the socket yet. */
static int conn_open(conn_t *c, const char *dir, const char *name, uint64_t deadline_ms) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

        *c = (conn_t){ .fd = -1, .deadline_ms = deadline_ms };
        if (dirfd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dirfd, name);
        for (;;) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (fd < 0)
                        return -errno;
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        c->fd = fd;
                        return 0;
                }
                close(fd);
                if ((errno != ENOENT && errno != ECONNREFUSED) || now_monotonic_ms() >= deadline_ms)
                        return -errno;
                usleep(10000);
        }
}

static void conn_close(conn_t *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
}

/* Some bytes into buf (appended), waiting until the deadline. */
static int conn_fill(conn_t *c) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        uint64_t now = now_monotonic_ms();
        ssize_t n;

        if (c->len >= sizeof(c->buf))
                return -ENOBUFS;
        if (now >= c->deadline_ms)
                return -ETIMEDOUT;
        if (poll(&p, 1, (int)(c->deadline_ms - now)) == 0)
                return -ETIMEDOUT;
        n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        if (n == 0)
                return -ECONNRESET;
        c->len += (size_t)n;
        return 0;
}

static int conn_write(conn_t *c, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = send(c->fd, p, size, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

/* ---- QMP, one command at a time ---------------------------------------------------------------- */

/* The next line that answers a command (events are skipped): its "return" (new reference), or
 * -EREMOTEIO with the error's description in *ret_error. */
static int qmp_answer(conn_t *c, json_t **ret, char **ret_error) {
        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                json_t *o, *v;
                int r;

                if (!nl) {
                        r = conn_fill(c);
                        if (r < 0)
                                return r;
                        continue;
                }
                *nl = '\0';
                o = json_loads(c->buf, 0, NULL);
                c->len -= (size_t)(nl + 1 - c->buf);
                memmove(c->buf, nl + 1, c->len);
                if (!o)
                        return -EBADMSG;
                if ((v = json_object_get(o, "return"))) {
                        *ret = json_incref(v);
                        json_decref(o);
                        return 0;
                }
                if ((v = json_object_get(o, "error"))) {
                        (void)error_set(ret_error, -EREMOTEIO, "%s",
                                        json_string_value(json_object_get(v, "desc")) ?: "QMP error");
                        json_decref(o);
                        return -EREMOTEIO;
                }
                json_decref(o); /* greeting or event */
        }
}

static int qmp_call(conn_t *c, json_t **ret, char **ret_error, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL;
        json_t *answer = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        r = conn_write(c, text, strlen(text));
        if (r < 0)
                return r;
        r = qmp_answer(c, &answer, ret_error);
        if (r < 0)
                return r;
        if (ret)
                *ret = answer;
        else
                json_decref(answer);
        return 0;
}

static int qmp_open(conn_t *c, const char *dir, uint64_t deadline_ms, char **ret_error) {
        int r = conn_open(c, dir, "qmp.sock", deadline_ms);

        if (r < 0)
                return error_set(ret_error, r, "cannot connect to %s/qmp.sock: %s", dir, strerror(-r));
        /* The greeting is not an answer: qmp_answer skips it on the way to this one. */
        r = qmp_call(c, NULL, ret_error, "{\"execute\":\"qmp_capabilities\"}\n");
        if (r < 0 && r != -EREMOTEIO)
                (void)error_set(ret_error, r, "QMP handshake: %s", strerror(-r));
        return r;
}

/* Until query-migrate says completed: 0; failed (its error-desc in *ret_error) or the deadline: < 0. */
static int qmp_migration_wait(conn_t *c, char **ret_error) {
        for (;;) {
                json_t *m = NULL;
                const char *status;
                int r = qmp_call(c, &m, ret_error, "{\"execute\":\"query-migrate\"}\n");

                if (r < 0)
                        return r == -EREMOTEIO ? r : error_set(ret_error, r, "query-migrate: %s", strerror(-r));
                status = json_string_value(json_object_get(m, "status")) ?: "";
                if (streq(status, "completed")) {
                        json_decref(m);
                        return 0;
                }
                if (streq(status, "failed") || streq(status, "cancelled")) {
                        r = error_set(ret_error, -EIO, "migration %s: %s", status,
                                      json_string_value(json_object_get(m, "error-desc")) ?: "no reason given");
                        json_decref(m);
                        return r;
                }
                json_decref(m);
                if (now_monotonic_ms() >= c->deadline_ms)
                        return error_set(ret_error, -ETIMEDOUT, "migration still %s",
                                         status[0] ? status : "not started");
                usleep(5000);
        }
}

#define IGNORE_SHARED                                                                                 \
        "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":[{\"capability\":" \
        "\"x-ignore-shared\",\"state\":true}]}}\n"

/* ---- the agent, one request at a time ---------------------------------------------------------- */

typedef struct agent_conn {
        conn_t c;
        agent_frame_reader_t reader;
} agent_conn_t;

static void agent_init(agent_conn_t *a) {
        a->c.fd = -1;
        a->c.len = 0;
        agent_frame_reader_init(&a->reader);
}

static int agent_open(agent_conn_t *a, const char *dir, uint64_t deadline_ms) {
        return conn_open(&a->c, dir, "agent.sock", deadline_ms);
}

static void agent_close(agent_conn_t *a) {
        conn_close(&a->c);
        agent_frame_reader_clear(&a->reader);
}

/* Send the request body packs (a map of n_keys: type and id are added), then read frames until
 * done(frame) says so: 0; a frame that is an error answer: -EREMOTEIO; the deadline: < 0. */
typedef bool (*agent_done_fn)(const msgpack_object *frame, uint64_t id);
static int agent_call(agent_conn_t *a, const char *type, uint64_t id, size_t n_keys,
                      void (*pack)(msgpack_packer *pk, void *userdata), void *userdata, agent_done_fn done) {
        msgpack_sbuffer body, frame;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&body);
        msgpack_sbuffer_init(&frame);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2 + n_keys);
        mp_pack_kv_str(&pk, "type", type);
        mp_pack_kv_u64(&pk, "id", id);
        pack(&pk, userdata);
        r = agent_frame_encode(body.data, body.size, &frame);
        if (r >= 0)
                r = conn_write(&a->c, frame.data, frame.size);
        msgpack_sbuffer_destroy(&body);
        msgpack_sbuffer_destroy(&frame);
        while (r >= 0) {
                msgpack_unpacked u;
                const msgpack_object *t;
                uint64_t answered;
                bool finished, failed;

                r = agent_frame_reader_next(&a->reader, &u);
                if (r == 0) {
                        a->c.len = 0;
                        r = conn_fill(&a->c);
                        if (r >= 0)
                                r = agent_frame_reader_feed(&a->reader, a->c.buf, a->c.len);
                        continue;
                }
                if (r < 0)
                        break;
                t = mp_map_get(&u.data, "type");
                failed = t && mp_str_eq(t, "error") && mp_get_u64(&u.data, "id", &answered) >= 0 && answered == id;
                finished = done(&u.data, id);
                msgpack_unpacked_destroy(&u);
                if (failed)
                        return -EREMOTEIO;
                if (finished)
                        return 0;
        }
        return r;
}

static void pack_hello(msgpack_packer *pk, void *userdata) { mp_pack_kv_u64(pk, "version", AGENT_PROTOCOL_VERSION); }

/* The agent is ready: its unsolicited ready, or the answer to our hello. */
static bool said_ready(const msgpack_object *frame, uint64_t id) {
        const msgpack_object *type = mp_map_get(frame, "type");
        bool ready = false;

        return type && (mp_str_eq(type, "ready") ||
                        (mp_str_eq(type, "hello") && mp_get_bool(frame, "ready", &ready) >= 0 && ready));
}

/* Until the guest's agent says it is ready. */
static int agent_wait_ready(const char *dir, uint64_t deadline_ms, char **ret_error) {
        agent_conn_t a;
        int r;

        agent_init(&a);
        r = agent_open(&a, dir, deadline_ms);
        if (r < 0) {
                agent_close(&a);
                return error_set(ret_error, r, "cannot connect to the agent: %s", strerror(-r));
        }
        r = agent_call(&a, "hello", 1, 1, pack_hello, NULL, said_ready);
        agent_close(&a);
        if (r < 0)
                return error_set(ret_error, r, "the template's agent never said ready: %s", strerror(-r));
        return 0;
}

/* ---- the ops ---------------------------------------------------------------------------------- */

static int file_identity(const char *path, char *buf, size_t size) {
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        snprintf(buf, size, "%s dev %ju ino %ju size %jd mtime %jd.%09ld", path, (uintmax_t)st.st_dev,
                 (uintmax_t)st.st_ino, (intmax_t)st.st_size, (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        return 0;
}

static int describe(const void *state, const vmm_profile_t *p, char **ret) {
        const vmm_qemu_t *q = state;
        char kernel[PATH_MAX + 128], initrd[PATH_MAX + 128], binary[PATH_MAX + 128];
        int r;

        if (!q || !q->binary)
                return -ENOENT;
        if ((r = file_identity(p->kernel, kernel, sizeof(kernel))) < 0 ||
            (r = file_identity(p->initrd, initrd, sizeof(initrd))) < 0 ||
            (r = file_identity(q->binary, binary, sizeof(binary))) < 0)
                return r;
        /* Version 1 of the layout: a change of what a template holds changes this line. Not the
         * TSC frequency: vmm-driver measures it at each start, and a template's guest keeps the
         * one it booted with (a key with it would not survive a restart). */
        if (asprintf(ret,
                     "husk template 2\nqemu %s\naccel %s\nkernel %s\ninitrd %s\ncpus %u\nmemory_mib %u\nnet %d\nfs 9p "
                     "%d\nvolumes 9p %u\n",
                     binary, q->accel, kernel, initrd, p->cpus, p->memory_mib, p->net, p->fs, p->volumes) < 0)
                return -ENOMEM;
        return 0;
}

/* The argv of a template (clone false) or a clone: the same machine and devices in the same
 * order, so that the saved device state fits. */
int vmm_qemu_template_params(const vmm_qemu_t *q, const vmm_profile_t *p, vmm_qemu_params_t *ret) {
        *ret = (vmm_qemu_params_t){ .binary = q->binary,
                                    .accel = q->accel,
                                    .kernel = p->kernel,
                                    .initrd = p->initrd,
                                    .instance_id = "template",
                                    .cpus = p->cpus,
                                    .memory_mib = p->memory_mib,
                                    .tsc_khz = q->tsc_khz,
                                    .tcg_cache_mib = q->tcg_cache_mib,
                                    .memory_file = VMM_TEMPLATE_MEMORY,
                                    .ninep_export = p->fs ? VMM_TEMPLATE_EXPORT : NULL,
                                    .n_ninep_volumes = p->volumes };
        return q->binary ? 0 : -ENOENT;
}

static int make(const void *state, const vmm_profile_t *p, const char *dir, pid_t *ret_pid, char **ret_error) {
        const vmm_qemu_t *q = state;
        vmm_net_t nic = { .attached = true,
                          .tap = "-",
                          .mac = TEMPLATE_MAC,
                          .host_ip = "0.0.0.0",
                          .guest_ip = "0.0.0.0",
                          .prefix = 30 };
        _cleanup_(vmm_strv_freep) char **argv = NULL;
        vmm_qemu_params_t params;
        char path[PATH_MAX];
        uint64_t deadline;
        conn_t c = { .fd = -1 };
        pid_t pid;
        int r;

        r = vmm_qemu_template_params(q, p, &params);
        if (r < 0)
                return error_set(ret_error, r, "qemu binary not found");
        params.net = p->net ? &nic : NULL;
        snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_EXPORT, dir);
        if ((p->fs || p->volumes) && mkdir(path, 0500) < 0 && errno != EEXIST)
                return error_set(ret_error, -errno, "cannot create %s: %s", path, strerror(errno));
        r = vmm_qemu_argv(&params, &argv);
        if (r < 0)
                return error_set(ret_error, r, "cannot build the template's command line: %s", strerror(-r));
        r = vmm_spawn(dir, argv, VMM_QEMU_LOG, &pid);
        if (r < 0)
                return error_set(ret_error, r, "cannot start %s: %s", argv[0], strerror(-r));
        __atomic_store_n(ret_pid, pid, __ATOMIC_SEQ_CST);

        deadline = now_monotonic_ms() + BOOT_TIMEOUT_MS;
        r = agent_wait_ready(dir, deadline, ret_error);
        if (r >= 0)
                r = qmp_open(&c, dir, now_monotonic_ms() + SAVE_TIMEOUT_MS, ret_error);
        /* Paused at agent-ready: what every clone resumes from. Its RAM is the shared file
         * already; the stream holds the devices' state only. */
        if (r >= 0)
                r = qmp_call(&c, NULL, ret_error, "{\"execute\":\"stop\"}\n");
        if (r >= 0)
                r = qmp_call(&c, NULL, ret_error, IGNORE_SHARED);
        if (r >= 0)
                r = qmp_call(&c, NULL, ret_error,
                             "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > " VMM_TEMPLATE_STATE
                             "\"}}\n");
        if (r >= 0)
                r = qmp_migration_wait(&c, ret_error);
        if (r >= 0)
                (void)qmp_call(&c, NULL, NULL, "{\"execute\":\"quit\"}\n");
        conn_close(&c);
        if (r < 0)
                kill(pid, SIGKILL);
        /* Cleared before the reap: whoever read it non-zero killed a child not reaped yet. */
        __atomic_store_n(ret_pid, 0, __ATOMIC_SEQ_CST);
        (void)waitpid(pid, NULL, 0);
        if (r < 0 && ret_error && !*ret_error)
                (void)error_set(ret_error, r, "%s", strerror(-r));
        return r;
}

static int restore(const char *instance_dir, const char *template_dir, bool resume, uint64_t timeout_ms,
                   char **ret_error) {
        conn_t c;
        int r;

        /* The path goes through QEMU's exec: migration URI, a shell command line. */
        if (strchr(template_dir, '\'') || strchr(template_dir, '"') || strchr(template_dir, '\\'))
                return error_set(ret_error, -EINVAL, "template directory %s: quotes are not supported", template_dir);
        r = qmp_open(&c, instance_dir, now_monotonic_ms() + timeout_ms, ret_error);
        if (r >= 0)
                r = qmp_call(&c, NULL, ret_error, IGNORE_SHARED);
        if (r >= 0)
                r = qmp_call(
                        &c, NULL, ret_error,
                        "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"exec:cat '%s/" VMM_TEMPLATE_STATE
                        "'\"}}\n",
                        template_dir);
        if (r >= 0)
                r = qmp_migration_wait(&c, ret_error);
        /* The state says "paused" (the template was stopped to be saved): QEMU keeps the clone
         * so whatever its command line, until told. */
        if (r >= 0 && resume)
                r = qmp_call(&c, NULL, ret_error, "{\"execute\":\"cont\"}\n");
        conn_close(&c);
        if (r < 0 && ret_error && !*ret_error)
                (void)error_set(ret_error, r, "%s", strerror(-r));
        return r;
}

/* argv behind `unshare --mount --propagation slave`: unshare(1) makes the namespace and execs
 * QEMU, so the pid spawned is QEMU's. slave: what the host mounts later (an image's file system)
 * reaches the clone; what is mounted in it (the image bound when it is taken) stays there. */
static int in_own_mount_namespace(char ***argv) {
        static const char *const prefix[] = { "--mount", "--propagation", "slave" };
        _cleanup_free_ char *unshare = NULL;
        char **v = *argv, **full;
        size_t n = 0;
        int r;

        r = vmm_find_executable("unshare", getenv("PATH") ?: "/usr/bin:/bin", &unshare);
        if (r < 0)
                return r;
        while (v[n])
                n++;
        full = calloc(1 + ELEMENTSOF(prefix) + n + 1, sizeof(char *));
        if (!full)
                return -ENOMEM;
        full[0] = TAKE_PTR(unshare);
        for (size_t k = 0; k < ELEMENTSOF(prefix); k++)
                if (!(full[1 + k] = strdup(prefix[k]))) {
                        vmm_strv_free(full);
                        return -ENOMEM;
                }
        memcpy(full + 1 + ELEMENTSOF(prefix), v, (n + 1) * sizeof(char *));
        free(v);
        *argv = full;
        return 0;
}

/* A restored clone runs once through what taking it will run (the host's connection, hello, an
 * identity), then pauses again. A clone is a new QEMU whose TCG has translated none of the
 * guest's code: taking a clone that never ran spent ~100 ms translating the agent's and the
 * kernel's paths for hello and ~90 ms for the identity, here. Run while the clone waits in the
 * pool, the instance that takes it finds that code translated. The identity is a placeholder
 * (fresh entropy, the clock, a hostname saying so, the template's MAC, a link-local address and
 * no route): the instance's own replaces every part of it. */
#define WARM_UP_HOSTNAME "husk-pool-warm-up"
#define WARM_UP_ADDRESS "169.254.0.2"

static void pack_identity(msgpack_packer *pk, void *userdata) { agent_identity_pack(pk, userdata); }

static bool answered(const msgpack_object *frame, uint64_t id) {
        uint64_t got;

        return mp_get_u64(frame, "id", &got) >= 0 && got == id;
}

static int warm_up(const char *dir, bool net, char **ret_error) {
        uint64_t deadline = now_monotonic_ms() + SAVE_TIMEOUT_MS;
        uint8_t entropy[WARM_UP_ENTROPY];
        agent_identity_t id = { .hostname = WARM_UP_HOSTNAME,
                                .entropy = entropy,
                                .entropy_size = sizeof(entropy),
                                .time_ns = now_realtime_ns(),
                                .mac = net ? TEMPLATE_MAC : NULL,
                                .ip = WARM_UP_ADDRESS,
                                .prefix = 30 };
        agent_conn_t a;
        conn_t c;
        int r;

        if (getrandom(entropy, sizeof(entropy), 0) != (ssize_t)sizeof(entropy))
                return error_set(ret_error, -errno, "no entropy for the warm-up: %m");
        agent_init(&a);
        r = qmp_open(&c, dir, deadline, ret_error);
        if (r >= 0)
                r = qmp_call(&c, NULL, ret_error, "{\"execute\":\"cont\"}\n");
        if (r >= 0)
                r = agent_open(&a, dir, deadline);
        if (r >= 0)
                r = agent_call(&a, "hello", 1, 1, pack_hello, NULL, answered);
        if (r >= 0)
                r = agent_call(&a, "identity", 2, agent_identity_keys(&id), pack_identity, &id, answered);
        explicit_bzero(entropy, sizeof(entropy));
        agent_close(&a);
        if (r < 0 && ret_error && !*ret_error)
                (void)error_set(ret_error, r, "warm-up: the agent did not answer: %s", strerror(-r));
        if (r >= 0)
                r = qmp_call(&c, NULL, ret_error, "{\"execute\":\"stop\"}\n");
        conn_close(&c);
        return r;
}

static int pool_clone(const void *state, const vmm_profile_t *p, const char *template_dir, const char *dir,
                      const char *tap, pid_t *ret_pid, char **ret_error) {
        const vmm_qemu_t *q = state;
        /* The addresses are the identity's (a clone's command line holds nothing of an instance). */
        vmm_net_t nic = {
                .attached = true, .mac = TEMPLATE_MAC, .host_ip = "0.0.0.0", .guest_ip = "0.0.0.0", .prefix = 30
        };
        _cleanup_(vmm_strv_freep) char **argv = NULL;
        char memory[PATH_MAX], export[PATH_MAX];
        vmm_qemu_params_t params;
        pid_t pid;
        int r;

        r = vmm_qemu_template_params(q, p, &params);
        if (r < 0)
                return error_set(ret_error, r, "qemu binary not found");
        snprintf(nic.tap, sizeof(nic.tap), "%s", tap);
        if (snprintf(memory, sizeof(memory), "%s/" VMM_TEMPLATE_MEMORY, template_dir) >= (int)sizeof(memory) ||
            snprintf(export, sizeof(export), "%s/" VMM_POOL_EXPORT, dir) >= (int)sizeof(export) ||
            strchr(template_dir, ',') || strchr(dir, ','))
                return error_set(ret_error, -EINVAL, "%s or %s: too long or holds a ','", template_dir, dir);
        params.memory_file = memory;
        params.clone = true;
        params.net = p->net ? &nic : NULL;
        params.ninep_export = p->fs ? export : NULL;
        r = vmm_qemu_argv(&params, &argv);
        if (r >= 0)
                r = in_own_mount_namespace(&argv);
        if (r < 0)
                return error_set(ret_error, r, "cannot build the clone's command line: %s", strerror(-r));
        r = vmm_spawn(dir, argv, VMM_QEMU_LOG, &pid);
        if (r < 0)
                return error_set(ret_error, r, "cannot start %s: %s", argv[0], strerror(-r));
        __atomic_store_n(ret_pid, pid, __ATOMIC_SEQ_CST);
        r = restore(dir, template_dir, false, SAVE_TIMEOUT_MS, ret_error);
        if (r >= 0)
                r = warm_up(dir, p->net, ret_error);
        if (r >= 0)
                return 0;
        kill(pid, SIGKILL);
        __atomic_store_n(ret_pid, 0, __ATOMIC_SEQ_CST);
        (void)waitpid(pid, NULL, 0);
        return r;
}

const vmm_template_ops_t vmm_qemu_template_ops = {
        .make = make,
        .restore = restore,
        .pool_clone = pool_clone,
        .describe = describe,
};
