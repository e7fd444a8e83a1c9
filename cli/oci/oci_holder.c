/* oci_holder.c: the VM holder: boots the VM, prepares the container's init (proc.create, start false), serves the control socket (start, kill, ps, pause, resume, delete, exec streams), relays stdio and signals, and ends with the container. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/oci/oci_agent.h"
#include "cli/oci/oci_chan.h"
#include "cli/oci/oci_holder.h"
#include "cli/oci/oci_net.h"
#include "cli/oci/oci_pty.h"
#include "cli/oci/oci_vm.h"
#include "lib/mp.h"
#include "proto/agent_proc.h"

#define CONNS_MAX 64
#define PENDING_MAX 256
#define BOOT_TIMEOUT_MS 120000      /* VM spawned to init prepared; TCG on a loaded host is slow */
#define AGENT_RETRY_MS 20           /* connect to QEMU's agent socket until it is there */
#define SHUTDOWN_TIMEOUT_MS 5000    /* the agent's power-off before SIGKILL */
#define INPUT_HIGH_WATER (1u << 20) /* stop reading stdin while this much waits for the agent */
#define INIT_PROC "init"

typedef enum phase {
        PHASE_BOOTING,   /* waiting for the agent */
        PHASE_PREPARING, /* start sent */
        PHASE_CREATING,  /* proc.create sent */
        PHASE_CREATED,
        PHASE_RUNNING,
        PHASE_STOPPING, /* init exited: the VM powers off */
} phase_t;

typedef enum req_kind {
        REQ_HELLO,
        REQ_IDENTITY,
        REQ_START,
        REQ_CREATE_INIT,
        REQ_PROC_START,
        REQ_KILL,
        REQ_EXEC,
        REQ_IGNORE, /* resize, exec signals, shutdown: the answer changes nothing */
} req_kind_t;

typedef struct conn {
        oci_chan_t chan;
        bool exec; /* an exec holder's stream: proc names its process */
        char proc[32];
        pid_t peer;   /* the exec holder (SO_PEERCRED) */
        bool closing; /* close once flushed */
        bool exited;  /* its process ended */
} conn_t;

typedef struct pending {
        uint64_t id;
        req_kind_t kind;
        conn_t *conn; /* the control connection waiting for the answer; NULL: none */
} pending_t;

typedef struct holder {
        const oci_holder_opts_t *o;
        oci_state_t state;
        oci_vm_t vm;
        phase_t phase;
        uint64_t deadline; /* monotonic ms: booting, or the power-off */

        oci_chan_t agent; /* fd -1 until connected */
        bool agent_ready;
        uint64_t next_id;
        pending_t pending[PENDING_MAX];
        size_t n_pending;
        msgpack_sbuffer sb;

        int listen_fd;
        conn_t *conns[CONNS_MAX];
        int sfd;

        int in_fd, out_fd, err_fd; /* the init's stdio on the host: fds 0/1/2, or the pty slave */
        bool in_open;              /* still reading in_fd */
        bool tty_raw;
        struct termios saved;
        bool terminal; /* the init has a pty: SIGWINCH means resize */

        oci_net_t net;    /* the VM's NIC in the container's network namespace, if it names one */
        char vmdir[4096]; /* the VM's sockets and logs: the container's directory, or a short one */
        int ready_fd;
        int exit_status;
        bool done;
} holder_t;

/* ---- small things -------------------------------------------------------------------------------- */

static int write_all(int fd, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        struct pollfd pf = { .fd = fd, .events = POLLOUT };
                        (void)poll(&pf, 1, 1000);
                        continue;
                }
                if (n < 0)
                        return -errno;
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

static void save_state(holder_t *h) {
        int r = oci_state_write(h->o->dir, &h->state);

        if (r < 0)
                oci_debug("%s: cannot write its state: %s", h->state.id, strerror(-r));
}

static void set_status(holder_t *h, oci_status_t s) {
        h->state.status = s;
        save_state(h);
}

/* Tell create how it went (once): "OK", or the error it reports. */
static void report(holder_t *h, const char *error) {
        if (h->ready_fd < 0) {
                if (error)
                        oci_error("%s", error);
                return;
        }
        (void)write_all(h->ready_fd, error ?: "OK", strlen(error ?: "OK"));
        close(h->ready_fd);
        h->ready_fd = -1;
}

/* Send the request just packed into h->sb (its id the last new_id() gave: pack, then send, with
 * nothing between) and remember who waits for its answer. 0 when it could not be sent. */
static uint64_t agent_send(holder_t *h, req_kind_t kind, conn_t *conn) {
        uint64_t id = h->next_id - 1; /* the packer used next_id - 1 */

        if (h->agent.fd < 0 || oci_chan_send(&h->agent, &h->sb) < 0)
                return 0;
        if (h->n_pending < PENDING_MAX)
                h->pending[h->n_pending++] = (pending_t){ .id = id, .kind = kind, .conn = conn };
        return id;
}

static uint64_t new_id(holder_t *h) { return h->next_id++; }

/* A frame to one control connection. */
static void conn_send(conn_t *c, msgpack_sbuffer *sb) {
        if (oci_chan_send(&c->chan, sb) < 0)
                c->closing = true;
}

static void conn_reply(holder_t *h, conn_t *c, const char *type, const char *error) {
        msgpack_packer pk;

        if (!c)
                return;
        msgpack_sbuffer_clear(&h->sb);
        msgpack_packer_init(&pk, &h->sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, error ? 2 : 1);
        mp_pack_kv_str(&pk, "type", error ? "error" : type);
        if (error)
                mp_pack_kv_str(&pk, "message", error);
        conn_send(c, &h->sb);
}

static void conn_close(holder_t *h, conn_t *c) {
        for (size_t k = 0; k < h->n_pending; k++)
                if (h->pending[k].conn == c)
                        h->pending[k].conn = NULL;
        for (size_t k = 0; k < CONNS_MAX; k++)
                if (h->conns[k] == c)
                        h->conns[k] = NULL;
        /* An exec holder gone before its process: the process goes too (the shim killed it). */
        if (c->exec && !c->exited && h->agent.fd >= 0) {
                oci_agent_pack_proc_signal(&h->sb, new_id(h), c->proc, SIGKILL, false);
                agent_send(h, REQ_IGNORE, NULL);
        }
        oci_chan_done(&c->chan);
        free(c);
}

static conn_t *conn_by_proc(holder_t *h, const char *proc) {
        for (size_t k = 0; k < CONNS_MAX; k++)
                if (h->conns[k] && h->conns[k]->exec && streq(h->conns[k]->proc, proc))
                        return h->conns[k];
        return NULL;
}

/* ---- the end ---------------------------------------------------------------------------------------- */

/* The container stopped with status: the VM powers off (or is killed), then the loop ends. */
static void stop(holder_t *h, int status, bool now) {
        if (h->phase == PHASE_STOPPING)
                return;
        h->exit_status = status;
        h->state.exit_status = status;
        h->phase = PHASE_STOPPING;
        set_status(h, OCI_STATUS_STOPPED);
        for (size_t k = 0; k < CONNS_MAX; k++)
                if (h->conns[k] && h->conns[k]->exec)
                        h->conns[k]->closing = true;
        if (!now && h->agent.fd >= 0 && h->vm.qemu_pid > 0) {
                oci_agent_pack_shutdown(&h->sb, new_id(h), 0);
                agent_send(h, REQ_IGNORE, NULL);
                h->deadline = now_monotonic_ms() + SHUTDOWN_TIMEOUT_MS;
        } else
                h->deadline = 0;
}

static void fail_create(holder_t *h, const char *error) {
        report(h, error);
        h->phase = PHASE_STOPPING;
        h->exit_status = OCI_EXIT_FAILURE;
        h->deadline = 0;
        h->done = true;
}

/* "what: why", or what alone when there is no memory to say why. */
static void fail_create_because(holder_t *h, const char *what, const char *why) {
        _cleanup_free_ char *m = NULL;

        if (asprintf(&m, "%s: %s", what, why) < 0)
                m = NULL;
        fail_create(h, m ?: what);
}

/* ---- agent frames -------------------------------------------------------------------------------- */

static const char *hostname(const holder_t *h) { return h->o->spec->hostname ?: h->o->id; }

static void send_start(holder_t *h) {
        h->phase = PHASE_PREPARING;
        oci_agent_pack_start(&h->sb, new_id(h), hostname(h), h->vm.mounts, h->vm.n_mounts, h->vm.clone);
        if (!agent_send(h, REQ_START, NULL))
                fail_create(h, "cannot talk to the VM's agent");
}

/* A clone is its template until it takes this container's identity: fresh entropy (clones never
 * share random state), the clock, the hostname, and the namespace's address on its NIC. */
static void send_identity(holder_t *h) {
        const vmm_net_t *n = &h->net.vm;
        uint8_t entropy[64];
        agent_identity_t id = { .hostname = hostname(h),
                                .entropy = entropy,
                                .entropy_size = sizeof(entropy),
                                .time_ns = now_realtime_ns(),
                                .mac = h->net.attached ? n->mac : NULL,
                                .ip = n->guest_ip,
                                .prefix = n->prefix,
                                .gw = n->host_ip };

        if (getrandom(entropy, sizeof(entropy), 0) != (ssize_t)sizeof(entropy)) {
                fail_create(h, "no host entropy for the VM's identity");
                return;
        }
        oci_agent_pack_identity(&h->sb, new_id(h), &id);
        explicit_bzero(entropy, sizeof(entropy));
        if (!agent_send(h, REQ_IDENTITY, NULL))
                fail_create(h, "cannot talk to the VM's agent");
}

static void on_ready(holder_t *h) {
        if (h->agent_ready)
                return;
        h->agent_ready = true;
        if (h->vm.clone)
                send_identity(h);
        else
                send_start(h);
}

static void send_proc_start(holder_t *h, conn_t *c) {
        oci_agent_pack_proc(&h->sb, "proc.start", new_id(h), INIT_PROC);
        if (!agent_send(h, REQ_PROC_START, c))
                conn_reply(h, c, "start", "cannot talk to the VM's agent");
}

/* An answer (or error) to one of our requests. */
static void on_answer(holder_t *h, const msgpack_object *body, bool error) {
        _cleanup_free_ char *message = NULL, *code = NULL;
        pending_t p = {};
        uint64_t id;
        size_t k;

        if (mp_get_u64(body, "id", &id) < 0)
                return;
        for (k = 0; k < h->n_pending; k++)
                if (h->pending[k].id == id)
                        break;
        if (k == h->n_pending)
                return;
        p = h->pending[k];
        h->pending[k] = h->pending[--h->n_pending];
        if (error) {
                (void)mp_get_str(body, "message", 4096, &message);
                (void)mp_get_str(body, "code", 64, &code);
        }
        switch (p.kind) {
        case REQ_HELLO: {
                bool ready = false;

                if (!error && mp_get_bool(body, "ready", &ready) >= 0 && ready)
                        on_ready(h);
                break;
        }
        case REQ_IDENTITY:
                if (error) {
                        fail_create_because(h, "the VM's clone refused its identity", message ?: "failed");
                        break;
                }
                send_start(h);
                break;
        case REQ_START:
                if (error) {
                        fail_create_because(h, "cannot prepare the container's root in the VM", message ?: "failed");
                        break;
                }
                h->phase = PHASE_CREATING;
                if (oci_agent_pack_proc_create(&h->sb, new_id(h), INIT_PROC, &h->o->spec->process, false) < 0 ||
                    !agent_send(h, REQ_CREATE_INIT, NULL))
                        fail_create(h, "cannot talk to the VM's agent");
                break;
        case REQ_CREATE_INIT:
                if (error) {
                        /* husk's message: the agent names the executable it could not run. */
                        fail_create(h, message ?: "cannot create the container's process");
                        break;
                }
                h->phase = PHASE_CREATED;
                set_status(h, OCI_STATUS_CREATED);
                report(h, NULL);
                if (h->o->start)
                        send_proc_start(h, NULL);
                break;
        case REQ_PROC_START:
                if (error) {
                        conn_reply(h, p.conn, "start", message ?: "cannot start the container's process");
                        break;
                }
                if (h->phase == PHASE_CREATED) {
                        h->phase = PHASE_RUNNING;
                        set_status(h, OCI_STATUS_RUNNING);
                }
                h->in_open = h->in_fd >= 0;
                conn_reply(h, p.conn, "start", NULL);
                break;
        case REQ_KILL:
                conn_reply(h, p.conn, "kill",
                           !error                            ? NULL
                           : code && streq(code, "conflict") ? "container not running"
                                                             : (message ?: "cannot signal the container"));
                break;
        case REQ_EXEC:
                if (!p.conn)
                        break;
                if (error) {
                        conn_reply(h, p.conn, "exec", message ?: "cannot run the process");
                        p.conn->closing = true;
                        break;
                }
                p.conn->exec = true;
                conn_reply(h, p.conn, "exec", NULL);
                break;
        case REQ_IGNORE:
                break;
        }
}

static void on_output(holder_t *h, const msgpack_object *body) {
        agent_proc_output_t out;
        conn_t *c;

        if (agent_proc_output_unpack(body, &out, NULL) < 0)
                return;
        if (streq(out.proc, INIT_PROC)) {
                int fd = out.fd == 2 ? h->err_fd : h->out_fd;

                /* A caller that stopped reading (closed its pipe) loses the output, not the container. */
                if (fd >= 0 && write_all(fd, out.data, out.size) < 0 && out.fd == 2)
                        h->err_fd = -1;
                return;
        }
        c = conn_by_proc(h, out.proc);
        if (c) {
                msgpack_packer pk;

                msgpack_sbuffer_clear(&h->sb);
                msgpack_packer_init(&pk, &h->sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 3);
                mp_pack_kv_str(&pk, "type", "output");
                mp_pack_kv_u64(&pk, "fd", (uint64_t)out.fd);
                mp_pack_str(&pk, "data");
                msgpack_pack_bin(&pk, out.size);
                msgpack_pack_bin_body(&pk, out.data, out.size);
                conn_send(c, &h->sb);
        }
}

static void on_exited(holder_t *h, const msgpack_object *body) {
        agent_proc_exited_t e;
        int64_t status;
        conn_t *c;

        if (agent_proc_exited_unpack(body, &e, NULL) < 0)
                return;
        status = e.status < 0 || e.status > 255 ? 255 : e.status;
        if (streq(e.proc, INIT_PROC)) {
                stop(h, (int)status, false);
                return;
        }
        c = conn_by_proc(h, e.proc);
        if (c) {
                msgpack_packer pk;

                msgpack_sbuffer_clear(&h->sb);
                msgpack_packer_init(&pk, &h->sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 2);
                mp_pack_kv_str(&pk, "type", "exited");
                mp_pack_kv_i64(&pk, "status", status);
                conn_send(c, &h->sb);
                c->exited = true;
                c->closing = true;
        }
}

static void on_agent_frame(holder_t *h, const msgpack_object *body) {
        const msgpack_object *type = mp_map_get(body, "type");

        if (type && type->type == MSGPACK_OBJECT_STR)
                oci_debug("%s: agent: %.*s", h->o->id, (int)type->via.str.size, type->via.str.ptr);

        if (mp_str_eq(type, "ready"))
                on_ready(h);
        else if (mp_str_eq(type, AGENT_FRAME_PROC_OUTPUT))
                on_output(h, body);
        else if (mp_str_eq(type, AGENT_FRAME_PROC_EXITED))
                on_exited(h, body);
        else if (mp_str_eq(type, "error"))
                on_answer(h, body, true);
        else if (mp_map_get(body, "id"))
                on_answer(h, body, false);
}

static void agent_connect(holder_t *h) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" OCI_VM_AGENT_SOCKET, h->vmdir) >= (int)sizeof(sa.sun_path))
                return;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return;
        }
        oci_chan_init(&h->agent, fd);
        /* The guest may have said ready while nobody listened: hello asks again. */
        oci_agent_pack_hello(&h->sb, new_id(h));
        agent_send(h, REQ_HELLO, NULL);
}

/* ---- control connections ---------------------------------------------------------------------------- */

static void ctl_kill(holder_t *h, conn_t *c, const msgpack_object *body) {
        uint64_t sig = SIGTERM;
        bool all = false;

        (void)mp_get_u64(body, "signal", &sig);
        (void)mp_get_bool(body, "all", &all);
        if (h->phase == PHASE_STOPPING)
                return conn_reply(h, c, "kill", all ? NULL : "container not running");
        if (h->phase < PHASE_CREATED)
                return conn_reply(h, c, "kill", "container is still being created");
        oci_agent_pack_proc_signal(&h->sb, new_id(h), INIT_PROC, (int)sig, all);
        if (!agent_send(h, REQ_KILL, c))
                conn_reply(h, c, "kill", "cannot talk to the VM's agent");
}

static void ctl_ps(holder_t *h, conn_t *c) {
        msgpack_packer pk;
        size_t n = 1;

        for (size_t k = 0; k < CONNS_MAX; k++)
                n += h->conns[k] && h->conns[k]->exec && !h->conns[k]->exited && h->conns[k]->peer > 0;
        msgpack_sbuffer_clear(&h->sb);
        msgpack_packer_init(&pk, &h->sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_str(&pk, "type", "ps");
        mp_pack_str(&pk, "pids");
        /* The host processes that stand for the container's: this holder and the exec holders. */
        msgpack_pack_array(&pk, n);
        msgpack_pack_int(&pk, getpid());
        for (size_t k = 0; k < CONNS_MAX; k++)
                if (h->conns[k] && h->conns[k]->exec && !h->conns[k]->exited && h->conns[k]->peer > 0)
                        msgpack_pack_int(&pk, h->conns[k]->peer);
        conn_send(c, &h->sb);
}

static void ctl_pause_resume(holder_t *h, conn_t *c, bool pause) {
        _cleanup_free_ char *why = NULL;
        const char *type = pause ? "pause" : "resume";

        if (h->phase != PHASE_RUNNING && h->phase != PHASE_CREATED)
                return conn_reply(h, c, type, "container not running");
        if (pause == (h->state.status == OCI_STATUS_PAUSED))
                return conn_reply(h, c, type, pause ? "container already paused" : "container not paused");
        if (oci_vm_qmp(h->vmdir, pause ? "stop" : "cont", &why) < 0)
                return conn_reply(h, c, type, why ?: "QMP failed");
        set_status(h, pause ? OCI_STATUS_PAUSED : h->phase == PHASE_RUNNING ? OCI_STATUS_RUNNING : OCI_STATUS_CREATED);
        conn_reply(h, c, type, NULL);
}

static void ctl_exec(holder_t *h, conn_t *c, const msgpack_object *body) {
        static unsigned seq;
        _cleanup_free_ char *text = NULL, *why = NULL;
        oci_process_t p;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int r;

        if (h->phase != PHASE_RUNNING && h->phase != PHASE_CREATED) {
                conn_reply(h, c, "exec", "cannot exec in a stopped container");
                c->closing = true;
                return;
        }
        if (mp_get_str(body, "process", OCI_CONFIG_MAX, &text) < 0 ||
            oci_process_parse_text(text, strlen(text), &p, &why) < 0) {
                conn_reply(h, c, "exec", why ?: "exec: no process");
                c->closing = true;
                return;
        }
        snprintf(c->proc, sizeof(c->proc), "exec-%u", ++seq);
        if (getsockopt(c->chan.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                c->peer = cred.pid;
        r = oci_agent_pack_proc_create(&h->sb, new_id(h), c->proc, &p, true);
        oci_process_done(&p);
        if (r < 0 || !agent_send(h, REQ_EXEC, c)) {
                conn_reply(h, c, "exec", "cannot talk to the VM's agent");
                c->closing = true;
        }
}

/* An exec holder's stream: its stdin, window size and signals for its process. */
static void ctl_stream(holder_t *h, conn_t *c, const msgpack_object *body) {
        const msgpack_object *type = mp_map_get(body, "type");
        const char *data;
        size_t size;
        uint64_t a, b;

        if (mp_str_eq(type, "stdin")) {
                if (oci_agent_bin(body, "data", &data, &size) == 0 && size <= OCI_AGENT_STDIN_MAX)
                        oci_agent_pack_proc_stdin(&h->sb, c->proc, data, size);
                else
                        oci_agent_pack_proc_stdin(&h->sb, c->proc, NULL, 0);
                if (h->agent.fd >= 0)
                        (void)oci_chan_send(&h->agent, &h->sb);
        } else if (mp_str_eq(type, "resize") && mp_get_u64(body, "rows", &a) == 0 &&
                   mp_get_u64(body, "cols", &b) == 0) {
                oci_agent_pack_proc_resize(&h->sb, new_id(h), c->proc, (unsigned)a, (unsigned)b);
                agent_send(h, REQ_IGNORE, NULL);
        } else if (mp_str_eq(type, "signal") && mp_get_u64(body, "signal", &a) == 0) {
                oci_agent_pack_proc_signal(&h->sb, new_id(h), c->proc, (int)a, false);
                agent_send(h, REQ_IGNORE, NULL);
        }
}

static void on_ctl_frame(holder_t *h, conn_t *c, const msgpack_object *body) {
        const msgpack_object *type = mp_map_get(body, "type");

        if (c->exec)
                ctl_stream(h, c, body);
        else if (mp_str_eq(type, "start")) {
                if (h->phase != PHASE_CREATED)
                        conn_reply(h, c, "start",
                                   h->phase == PHASE_RUNNING ? "cannot start an already running container"
                                                             : "cannot start a container that has stopped");
                else
                        send_proc_start(h, c);
        } else if (mp_str_eq(type, "kill"))
                ctl_kill(h, c, body);
        else if (mp_str_eq(type, "ps"))
                ctl_ps(h, c);
        else if (mp_str_eq(type, "pause"))
                ctl_pause_resume(h, c, true);
        else if (mp_str_eq(type, "resume"))
                ctl_pause_resume(h, c, false);
        else if (mp_str_eq(type, "exec"))
                ctl_exec(h, c, body);
        else if (mp_str_eq(type, "delete")) {
                conn_reply(h, c, "delete", NULL);
                (void)oci_chan_flush(&c->chan);
                if (h->phase != PHASE_STOPPING)
                        stop(h, 128 + SIGKILL, true);
                h->deadline = 0;
        } else
                conn_reply(h, c, "error", "unknown request");
}

static void ctl_accept(holder_t *h) {
        int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        conn_t *c;

        if (fd < 0)
                return;
        for (size_t k = 0; k < CONNS_MAX; k++)
                if (!h->conns[k]) {
                        c = calloc(1, sizeof(*c));
                        if (!c)
                                break;
                        oci_chan_init(&c->chan, fd);
                        h->conns[k] = c;
                        return;
                }
        close(fd);
}

static int ctl_listen(const char *dir) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int dfd = -1;
        int fd;

        /* Through the directory's fd: a container directory may be longer than sun_path. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" OCI_CONTROL_SOCKET, dfd);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void)unlinkat(dfd, OCI_CONTROL_SOCKET, 0);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* ---- signals and children ----------------------------------------------------------------------------- */

static void on_signal(holder_t *h) {
        struct signalfd_siginfo si;

        while (read(h->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                int sig = (int)si.ssi_signo;

                if (sig == SIGCHLD) {
                        int status;
                        pid_t pid;

                        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                                if (pid != h->vm.qemu_pid)
                                        continue; /* a virtiofsd */
                                h->vm.qemu_pid = 0;
                                if (h->phase < PHASE_CREATED) {
                                        _cleanup_free_ char *tail = NULL;
                                        char path[4200];

                                        snprintf(path, sizeof(path), "%s/" OCI_VM_QEMU_LOG, h->vmdir);
                                        (void)read_file_tail(path, 512, &tail);
                                        fail_create_because(h, "the VM ended before the container was created",
                                                            tail && *tail ? tail : "QEMU said nothing");
                                } else if (h->phase != PHASE_STOPPING)
                                        /* The VMM died under the container: killed, as far as anyone can tell. */
                                        stop(h, 128 + SIGKILL, true);
                        }
                        continue;
                }
                if (sig == SIGWINCH) {
                        unsigned rows, cols;

                        if (h->terminal && h->in_fd >= 0 && oci_tty_size(h->in_fd, &rows, &cols) == 0 &&
                            h->phase >= PHASE_CREATED && h->phase != PHASE_STOPPING) {
                                oci_agent_pack_proc_resize(&h->sb, new_id(h), INIT_PROC, rows, cols);
                                agent_send(h, REQ_IGNORE, NULL);
                        }
                        continue;
                }
                /* Anything else the caller sends us is for the container's process (the shim
                 * signals the pid it was given with kill(2)). */
                if (h->phase >= PHASE_CREATED && h->phase != PHASE_STOPPING) {
                        oci_agent_pack_proc_signal(&h->sb, new_id(h), INIT_PROC, sig, false);
                        agent_send(h, REQ_IGNORE, NULL);
                } else if (h->phase < PHASE_CREATED && (sig == SIGTERM || sig == SIGINT || sig == SIGKILL))
                        fail_create(h, "interrupted while creating the container");
        }
}

/* ---- stdin ------------------------------------------------------------------------------------------- */

static void on_input(holder_t *h) {
        char buf[OCI_AGENT_STDIN_MAX];
        ssize_t n = read(h->in_fd, buf, sizeof(buf));

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n > 0)
                oci_agent_pack_proc_stdin(&h->sb, INIT_PROC, buf, (size_t)n);
        else {
                /* EOF (or EIO: the pty's master was closed): the process's stdin closes. */
                oci_agent_pack_proc_stdin(&h->sb, INIT_PROC, NULL, 0);
                h->in_open = false;
        }
        if (h->agent.fd >= 0)
                (void)oci_chan_send(&h->agent, &h->sb);
}

/* ---- the loop -------------------------------------------------------------------------------------------- */

enum { P_SIGNAL, P_LISTEN, P_AGENT, P_INPUT, P_CONNS };

static void loop(holder_t *h) {
        while (!h->done) {
                struct pollfd p[P_CONNS + CONNS_MAX];
                conn_t *polled[CONNS_MAX];
                size_t n_conns = 0;
                uint64_t now = now_monotonic_ms();
                int timeout = -1;

                if (h->phase == PHASE_STOPPING &&
                    (h->vm.qemu_pid <= 0 || (h->deadline && now >= h->deadline) || !h->deadline)) {
                        /* Powered off, or out of patience. */
                        break;
                }
                if (h->phase < PHASE_CREATED && now >= h->deadline) {
                        fail_create(h, "the VM's agent did not answer in time (see qemu.log and console.log in the "
                                       "container directory)");
                        break;
                }
                if (h->agent.fd < 0 && h->vm.qemu_pid > 0) {
                        agent_connect(h);
                        if (h->agent.fd < 0)
                                timeout = AGENT_RETRY_MS;
                }
                if (h->deadline) {
                        int left = (int)(h->deadline > now ? h->deadline - now : 0);
                        timeout = timeout < 0 || left < timeout ? left : timeout;
                }
                p[P_SIGNAL] = (struct pollfd){ .fd = h->sfd, .events = POLLIN };
                p[P_LISTEN] = (struct pollfd){ .fd = h->listen_fd, .events = POLLIN };
                p[P_AGENT] = (struct pollfd){ .fd = h->agent.fd,
                                              .events = POLLIN | (oci_chan_pending(&h->agent) ? POLLOUT : 0) };
                /* Back-pressure: no more stdin while the agent is behind. */
                p[P_INPUT] = (struct pollfd){
                        .fd = h->in_open && h->agent.out.size - h->agent.out_off < INPUT_HIGH_WATER ? h->in_fd : -1,
                        .events = POLLIN
                };
                for (size_t k = 0; k < CONNS_MAX; k++) {
                        conn_t *c = h->conns[k];

                        if (!c)
                                continue;
                        if (c->closing && !oci_chan_pending(&c->chan)) {
                                conn_close(h, c);
                                continue;
                        }
                        polled[n_conns] = c;
                        p[P_CONNS + n_conns++] =
                                (struct pollfd){ .fd = c->chan.fd,
                                                 .events = POLLIN | (oci_chan_pending(&c->chan) ? POLLOUT : 0) };
                }
                if (poll(p, P_CONNS + n_conns, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[P_SIGNAL].revents)
                        on_signal(h);
                if (p[P_AGENT].revents && h->agent.fd >= 0) {
                        msgpack_unpacked u;
                        int r;

                        if (p[P_AGENT].revents & POLLOUT)
                                (void)oci_chan_flush(&h->agent);
                        if (p[P_AGENT].revents & (POLLIN | POLLHUP | POLLERR))
                                (void)oci_chan_read(&h->agent);
                        while ((r = oci_chan_next(&h->agent, &u)) > 0) {
                                on_agent_frame(h, &u.data);
                                msgpack_unpacked_destroy(&u);
                        }
                        if (r < 0 || h->agent.eof) {
                                /* The channel is gone with the VM (its exit is seen by SIGCHLD). */
                                oci_chan_done(&h->agent);
                                if (h->phase == PHASE_STOPPING && h->vm.qemu_pid <= 0)
                                        break;
                        }
                }
                if (p[P_INPUT].fd >= 0 && p[P_INPUT].revents)
                        on_input(h);
                if (p[P_LISTEN].revents)
                        ctl_accept(h);
                for (size_t k = 0; k < n_conns; k++) {
                        conn_t *c = polled[k];
                        msgpack_unpacked u;
                        int r;

                        if (!p[P_CONNS + k].revents)
                                continue;
                        if (p[P_CONNS + k].revents & POLLOUT)
                                (void)oci_chan_flush(&c->chan);
                        if (p[P_CONNS + k].revents & (POLLIN | POLLHUP | POLLERR))
                                (void)oci_chan_read(&c->chan);
                        while ((r = oci_chan_next(&c->chan, &u)) > 0) {
                                on_ctl_frame(h, c, &u.data);
                                msgpack_unpacked_destroy(&u);
                        }
                        if (r < 0 || c->chan.eof)
                                conn_close(h, c);
                }
        }
}

/* ---- setup --------------------------------------------------------------------------------------------- */

static int setup_signals(holder_t *h) { return oci_signals_to_forward(&h->sfd); }

int oci_holder_run(const oci_holder_opts_t *o) {
        holder_t h = { .o = o,
                       .sfd = -1,
                       .listen_fd = -1,
                       .in_fd = -1,
                       .out_fd = -1,
                       .err_fd = -1,
                       .next_id = 1,
                       .ready_fd = o->ready_fd,
                       .exit_status = OCI_EXIT_FAILURE };
        _cleanup_free_ char *rootfs = NULL, *why = NULL;
        char created[64];
        int r, master = -1;

        msgpack_sbuffer_init(&h.sb);
        oci_chan_init(&h.agent, -1);
        oci_now_rfc3339(created, sizeof(created));
        h.state = (oci_state_t){ .id = (char *)o->id,
                                 .bundle = (char *)o->bundle,
                                 .created = created,
                                 .owner = "",
                                 .status = OCI_STATUS_CREATING,
                                 .pid = getpid(),
                                 .exit_status = -1 };
        (void)oci_pid_start_time(getpid(), &h.state.pid_start);

        r = oci_vm_rootfs(o->bundle, o->spec, &rootfs, &why);
        h.state.rootfs = rootfs ?: (char *)"";
        save_state(&h);
        if (r < 0) {
                fail_create(&h, why);
                goto out;
        }
        r = setup_signals(&h);
        if (r >= 0)
                r = h.listen_fd = ctl_listen(o->dir);
        if (r < 0) {
                fail_create(&h, "cannot set up the holder's signals or control socket");
                goto out;
        }

        /* The init's stdio on the host. */
        h.terminal = o->spec->process.terminal;
        if (o->console_socket) {
                int slave;

                r = oci_pty_open(o->spec->process.rows, o->spec->process.cols, &master, &slave, &why);
                if (r >= 0)
                        r = oci_pty_send(o->console_socket, master, &why);
                if (r < 0) {
                        if (master >= 0)
                                close(master);
                        fail_create(&h, why);
                        goto out;
                }
                close(master);
                (void)oci_stdio_null();
                (void)oci_pty_control(slave);
                h.in_fd = h.out_fd = h.err_fd = slave;
        } else {
                h.in_fd = STDIN_FILENO;
                h.out_fd = STDOUT_FILENO;
                h.err_fd = STDERR_FILENO;
                if (o->tty_raw && oci_tty_raw(STDIN_FILENO, &h.saved) == 0)
                        h.tty_raw = true;
                if (h.terminal && oci_tty_size(STDIN_FILENO, &o->spec->process.rows, &o->spec->process.cols) < 0)
                        o->spec->process.rows = o->spec->process.cols = 0;
        }

        r = oci_vm_dir(o->dir, h.vmdir, sizeof(h.vmdir));
        if (r < 0) {
                fail_create(&h, "cannot make the VM's directory");
                goto out;
        }
        /* A network namespace with an interface (Docker's bridge, a CNI's veth): the VM's NIC
         * stands in for it. None, or one with only loopback: no NIC (`--network none`). */
        if (o->spec->netns_path && (r = oci_net_attach(o->spec->netns_path, &h.net, &why)) < 0) {
                fail_create(&h, why);
                goto out;
        }
        r = oci_vm_start(o->ctx, o->spec, rootfs, h.vmdir, &h.net.vm, &h.vm, &why);
        if (r < 0) {
                fail_create(&h, why);
                goto out;
        }
        (void)oci_vm_write_pid(o->dir, &h.vm);
        h.deadline = now_monotonic_ms() + BOOT_TIMEOUT_MS;
        loop(&h);

out:
        if (h.tty_raw)
                oci_tty_restore(STDIN_FILENO, &h.saved);
        if (h.ready_fd >= 0)
                report(&h, "the VM holder stopped before the container was created");
        for (size_t k = 0; k < CONNS_MAX; k++)
                if (h.conns[k])
                        conn_close(&h, h.conns[k]);
        oci_chan_done(&h.agent);
        oci_vm_done(&h.vm);
        oci_net_detach(&h.net);
        if (h.vmdir[0] && !streq(h.vmdir, o->dir))
                (void)rm_rf(h.vmdir);
        if (h.listen_fd >= 0) {
                char path[4200];

                close(h.listen_fd);
                snprintf(path, sizeof(path), "%s/" OCI_CONTROL_SOCKET, o->dir);
                (void)unlink(path);
        }
        if (h.state.status == OCI_STATUS_CREATING) {
                /* A failed create leaves nothing behind (containerd's delete then finds no container). */
                (void)rm_rf(o->dir);
        } else if (h.state.status != OCI_STATUS_STOPPED) {
                h.state.exit_status = h.exit_status;
                set_status(&h, OCI_STATUS_STOPPED);
        }
        if (h.sfd >= 0)
                close(h.sfd);
        msgpack_sbuffer_destroy(&h.sb);
        return h.exit_status;
}
