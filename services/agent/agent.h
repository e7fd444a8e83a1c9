/* agent.h: what husk-agent's files share: console logging, kernel cmdline, system setup,
 * module loading, the host channel, the protocol handlers and power-off. */
#pragma once

#include <msgpack.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include "lib/util.h"
#include "proto/agent_frame.h"
#include "proto/agent_proc.h"

/* HUSK_VERSION comes from the build (the VERSION file), like every husk binary's. */
#define AGENT_NAME "husk-agent " HUSK_VERSION

/* ---- agent_log.c: lines on the console, "husk-agent: ..." -------------------------------- */

void agent_log_set_max_level(int level);
/* Prints at or above max level and returns -abs(error), so that callers can
 * `return agent_log_errno(LOG_ERR, r, "...: %m")`; %m prints strerror(error). */
int agent_log(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_agent_error(...) agent_log(LOG_ERR, 0, __VA_ARGS__)
#define log_agent_warning(...) agent_log(LOG_WARNING, 0, __VA_ARGS__)
#define log_agent_info(...) agent_log(LOG_INFO, 0, __VA_ARGS__)
#define log_agent_debug(...) agent_log(LOG_DEBUG, 0, __VA_ARGS__)
#define log_agent_error_errno(e, ...) agent_log(LOG_ERR, (e), __VA_ARGS__)
#define log_agent_warning_errno(e, ...) agent_log(LOG_WARNING, (e), __VA_ARGS__)
#define log_agent_debug_errno(e, ...) agent_log(LOG_DEBUG, (e), __VA_ARGS__)

/* ---- agent_cmdline.c: the kernel command line ------------------------------------------- */

#define AGENT_CMDLINE_MAX 4096 /* COMMAND_LINE_SIZE on x86 is 2048; room to spare */

/* The value of the last `key=value` word (double quotes removed); -ENOENT when absent. */
int cmdline_get(const char *cmdline, const char *key, char **ret);
/* Every `<module>.<param>=<value>` word for one module ('-' and '_' are the same in module
 * names, as for modprobe), as "param=value param2=value2" for finit_module(). The kernel
 * keeps such words for built-in code only: for loadable modules the loader must pass them.
 * *ret is "" when there are none. */
int cmdline_module_options(const char *cmdline, const char *module, char **ret);
/* A hostname-safe name for the guest (husk.instance, the hostname field): 1..63 of
 * [a-zA-Z0-9-], not starting with '-'. Looser than proto's instance_id_valid on purpose: the
 * guest only needs a hostname it can set. */
bool agent_hostname_valid(const char *id);

/* ---- agent_init.c: PID 1 setup ---------------------------------------------------------- */

/* Mount proc, sysfs, devtmpfs, devpts, /dev/shm and /run; make sure fds 0-2 are the
 * console. Failures of the first three are fatal (returned), of the rest warnings. */
int agent_init_mounts(void);
int agent_init_hostname(const char *instance);
/* CLOCK_BOOTTIME in ms: how long the kernel has been up. */
uint64_t agent_uptime_ms(void);

/* ---- agent_modules.c: a small modprobe -------------------------------------------------- */

typedef struct agent_modules agent_modules_t;

/* Index dir/modules.dep, modules.softdep and modules.builtin. */
int agent_modules_open(const char *dir, const char *cmdline, agent_modules_t **ret);
agent_modules_t *agent_modules_free(agent_modules_t *m);
static inline void agent_modules_freep(agent_modules_t **m) { *m = agent_modules_free(*m); }
/* Load a module after its dependencies and softdeps (pre: before, post: after), with its
 * options from the kernel cmdline. 0 when loaded or already there (or built in), -ENOENT
 * when unknown, else the kernel's error. */
int agent_modules_load(agent_modules_t *m, const char *name);
/* Load every module with an alias matching modalias (a device's, or a name like
 * "crypto-crc32c"). 0 when at least one loaded, -ENOENT when none matches. */
int agent_modules_load_alias(agent_modules_t *m, const char *modalias);
/* Load the drivers for the devices present on one bus, as udev would at boot: every
 * devices_dir/<dev>/modalias through agent_modules_load_alias(). Returns how many devices
 * got a driver. */
int agent_modules_coldplug(agent_modules_t *m, const char *devices_dir);
/* Parsing, separated for the unit tests: the dependencies of name in a modules.dep text
 * (one "path: dep dep" line per module), as paths, into ret[0..n). */
int modules_dep_lookup(const char *dep_text, const char *name, char **ret_path, char ***ret_deps, size_t *ret_n);
/* "ext4.ko" and "/a/b/ext-4.ko.xz" -> "ext4" / "ext_4": the name modprobe compares. */
void module_name_from_path(const char *path, char *buf, size_t size);

/* ---- agent_channel.c: the virtio-serial port to the host -------------------------------- */

#define AGENT_OUT_MAX (2u * AGENT_FRAME_MAX) /* frames queued for a host that does not read */

typedef struct agent_channel {
        char path[256];              /* /dev/vportNpM, or "vsock:<port>" */
        int fd;                      /* -1 while closed */
        int listen_fd;               /* vsock: the listening socket; -1 for the virtio-serial port */
        bool host_connected;         /* false after EOF until SIGIO says the host is back */
        agent_frame_reader_t reader; /* input, resynced by reopening on malformed frames */
        msgpack_sbuffer out;         /* encoded frames not yet written */
        size_t out_off;              /* bytes of out already written */
} agent_channel_t;

/* Poll /sys/class/virtio-ports/<port>/name for name; writes /dev/<port> to path. */
int agent_channel_find(const char *name, uint64_t timeout_ms, char *path, size_t size);
/* A virtio console device is on the virtio bus (its ports may not be probed yet). */
bool agent_channel_device_present(void);
void agent_channel_init(agent_channel_t *c);
int agent_channel_open(agent_channel_t *c, const char *path);
void agent_channel_close(agent_channel_t *c);
/* Close and reopen: drops buffered input so the next byte read starts a fresh stream. */
int agent_channel_reopen(agent_channel_t *c);
/* Queue one frame around a packed body; -ENOBUFS when the host has not read for too long. */
int agent_channel_queue(agent_channel_t *c, const msgpack_sbuffer *body);
static inline bool agent_channel_pending(const agent_channel_t *c) { return c->out.size > c->out_off; }
/* Write what the port takes now: 0 when all is written, -EAGAIN when some is left, -EPIPE
 * when the host is not connected. */
int agent_channel_flush(agent_channel_t *c);
/* Keep flushing for up to timeout_ms: used before power-off and before a resync. */
int agent_channel_drain(agent_channel_t *c, uint64_t timeout_ms);
/* Read what is there into the frame reader: >0 bytes read, -EAGAIN when nothing was there,
 * -EPIPE when the host is not connected (read returned 0). */
int agent_channel_read(agent_channel_t *c);
/* Called when the host went away: drop partial input and a partially written frame. */
void agent_channel_host_gone(agent_channel_t *c);

/* ---- agent_vsock.c: AF_VSOCK transport (cloud-hypervisor, disk images) ------------------------ */

/* Listen on port (any CID); connections are taken by agent_vsock_accept() from the loop. */
int agent_vsock_listen(agent_channel_t *c, unsigned port);
/* Take a waiting connection; it replaces the current one (the host reconnected). -EAGAIN when none. */
int agent_vsock_accept(agent_channel_t *c);

/* ---- agent_proto.c: what each message type does ----------------------------------------- */

/* ---- agent_console.c: workload output on the console --------------------------------------- */

/* Workload lines on the console start with these (proto/SCHEMA.md, "Console stream convention"),
 * so that logd tells them from kernel and agent lines. */
#define AGENT_CONSOLE_STDOUT "husk-workload: "
#define AGENT_CONSOLE_STDERR "husk-workload-err: "
#define AGENT_CONSOLE_LINE_MAX 4000 /* longer lines are split, each part with the marker */

typedef struct agent_relay {
        int fd; /* read end of the workload's stdout or stderr; -1 once at EOF */
        const char *marker;
        int console; /* where lines go: the console (stderr of PID 1) */
        char line[AGENT_CONSOLE_LINE_MAX];
        size_t len;
} agent_relay_t;

void agent_relay_init(agent_relay_t *r, int fd, const char *marker, int console);
/* Read what is there and write every complete line; at EOF the last partial line too, and the
 * fd is closed. Returns 0, or -EPIPE at EOF. */
int agent_relay_read(agent_relay_t *r);
/* Split buffered bytes into marked lines (separated for the unit tests). */
void agent_relay_feed(agent_relay_t *r, const char *data, size_t size, bool eof);

/* ---- agent_volumes.c: the volumes, mounted in the workload's root -------------------------------- */

typedef struct agent_mount {
        char *tag;
        char *destination; /* absolute, not /, no ".." */
        bool readonly;
        char *file; /* bind this file of the share onto destination; NULL: mount the share there */
} agent_mount_t;

/* The start frame's optional mounts: [{tag, destination, readonly, file?}]; -EBADMSG when any
 * is malformed, nothing allocated then. */
int agent_mounts_parse(const msgpack_object *req, agent_mount_t **ret, size_t *ret_n);
/* Inside the workload's root (after the switch), each at its destination; msg says why not. */
int agent_mounts_apply(const agent_mount_t *m, size_t n, bool ninep, char *msg, size_t msg_size);
void agent_mounts_free(agent_mount_t *m, size_t n);

/* ---- agent_bundle.c: an OCI bundle's config.json ---------------------------------------------- */

typedef struct agent_bundle {
        char **args;    /* process.args */
        char **env;     /* process.env, "KEY=VALUE" */
        char *cwd;      /* process.cwd; NULL: "/" */
        char **ignored; /* fields present that a VM cannot apply, as "linux.namespaces" */
} agent_bundle_t;

#define AGENT_BUNDLE_CONFIG_MAX (1u << 20)
void agent_bundle_clear(agent_bundle_t *b);
/* Parse config.json text. -EBADMSG (with *ret_error) when it is not an OCI runtime config. */
int agent_bundle_parse(const char *text, agent_bundle_t *b, char **ret_error);

/* ---- agent_net.c: eth0 from the kernel command line ------------------------------------------- */

typedef struct agent_net {
        bool configured;
        uint32_t addr, gateway, dns; /* network byte order; 0: absent */
        unsigned prefix;
} agent_net_t;

/* husk.ip=<a.b.c.d>/<prefix> husk.gw=<a.b.c.d> husk.dns=<a.b.c.d>: -ENOENT without husk.ip,
 * -EINVAL when malformed. */
int agent_net_parse(const char *cmdline, agent_net_t *n);
/* lo up; eth0 up with the address; default route through the gateway. */
int agent_net_configure(const agent_net_t *n);
/* /etc/resolv.conf of the current root, when a DNS server was given. */
int agent_net_write_resolv_conf(const agent_net_t *n);

/* ---- agent_workload.c, agent_exec.c: what the host asks to run -------------------------------- */

#define AGENT_EXEC_MAX 16                /* execs running at once */
#define AGENT_EXEC_OUTPUT_MAX (1u << 20) /* bytes of stdout, and of stderr, kept per exec */
#define AGENT_EXEC_STDIN_MAX (1u << 20)
#define AGENT_EXEC_TIMEOUT_MAX_MS (24u * 3600u * 1000u)
#define AGENT_EXEC_DEFAULT_TIMEOUT_MS 60000u
/* Frames waiting for the host above which procs' output is left in their pipes, and a proc's
 * stdin bytes not yet taken above which the channel is not read: bounded memory, no drops. */
#define AGENT_PROC_BACKLOG_MAX (1u << 20)
#define AGENT_PROC_STDIN_MAX (1u << 20)

typedef struct agent_buf {
        char *data;
        size_t len, cap;
} agent_buf_t;

/* A process the host started: a v1 exec (output captured, one answer when it is done) or a
 * protocol 2 proc (named, stdio streamed as proc.output, proc.exited at the end). One struct,
 * one spawn, one set of loop hooks for both (agent_proc.c). */
typedef struct agent_proc {
        agent_proc_name_t name; /* "" for a v1 exec */
        bool is_exec;           /* v1 exec: answered with exec_id once done, then forgotten */
        uint64_t exec_id;
        uint64_t seq; /* creation order: the oldest exited proc is forgotten first */
        agent_proc_state_t state;
        pid_t pid;   /* kept once reaped: proc.list shows it */
        bool reaped; /* pid is no longer ours */
        int status;  /* code or 128+signal, once reaped */
        bool terminal;
        int gate_fd;        /* created, not started: one byte on it lets the process execve */
        int in_fd;          /* stdin: the pipe's write end, or a dup of the pty master; -1 once closed */
        int out_fd, err_fd; /* read ends; a terminal's out_fd is the pty master, err_fd -1 */
        agent_buf_t in;     /* stdin not yet taken by the process */
        size_t in_off;
        bool in_eof;          /* close stdin (a terminal: send VEOF) once in is written */
        agent_buf_t out, err; /* v1 exec: captured output */
        bool truncated, timed_out;
        uint64_t deadline_ms;  /* v1 exec: monotonic */
        uint64_t reaped_at_ms; /* monotonic; pipes held by orphans are not waited for long */
        bool reported;         /* proc.exited is queued */
} agent_proc_t;

typedef struct agent_workload {
        bool started; /* a start request was accepted */
        pid_t pid;    /* 0: none, or reaped */
        bool exited;
        int status;            /* code or 128+signal */
        uint64_t exited_at_ms; /* monotonic */
        bool reported;         /* the exited frame is queued */
        agent_relay_t out, err;
        char **env; /* the workload's environment: exec starts from it */
        char *cwd;
        char *kind;
} agent_workload_t;

typedef struct agent_state {
        bool shutdown_requested; /* set by a shutdown request: the loop powers off */
        uint64_t shutdown_grace_ms;
        bool power_off; /* the workload exited and was reported: the loop ends */
        agent_workload_t workload;
        agent_proc_t *procs[AGENT_PROCS_MAX]; /* v1 execs and protocol 2 procs */
        uint64_t proc_seq;
        size_t out_backlog; /* bytes queued for the host: above AGENT_PROC_BACKLOG_MAX no output is read */
        agent_net_t net;
        const char *image_dir; /* where the image is mounted; tests point it elsewhere */
        bool no_switch_root;   /* tests: run the workload without mounts or chroot */
        bool no_workload;      /* a daemon in a disk image: the image's init runs the workload */
        int console;           /* fd for workload lines; 2 */
} agent_state_t;

void agent_state_init(agent_state_t *s);
/* The environment every process the agent starts begins with. */
int agent_base_env(const char *hostname, char ***ret);
/* How to start a process (agent_spawn.c): the one fork+exec of the agent. */
typedef struct agent_spawn {
        char *const *argv; /* argv[0] looked up on env's PATH (the default PATH without one) */
        char *const *env;
        const char *cwd;           /* NULL: / */
        int in_fd, out_fd, err_fd; /* in_fd -1: /dev/null */
        int tty_fd;                /* >= 0: a pty's slave, the controlling tty and fds 0-2 */
        bool set_user;             /* else the agent's (root) */
        uint32_t uid, gid;
        const uint32_t *gids;
        size_t n_gids;
        const agent_rlimit_t *rlimits;
        size_t n_rlimits;
        bool no_new_privileges;
        int gate_fd; /* >= 0: wait for a byte on it before execve (EOF: exit 126 without running) */
} agent_spawn_t;

/* Fork, set the process up (session, fds, limits, user, cwd) and find argv[0], in the child;
 * then exec, or wait on the gate. Returns once the child is ready or failed: -errno, msg saying
 * what, and *ret_cannot_run true when it was argv[0] that could not be run (missing: -ENOENT;
 * not executable: -EACCES), false when a setup step failed. A failed child is gone (the loop
 * reaps it). */
int agent_spawn_run(const agent_spawn_t *sp, pid_t *ret_pid, bool *ret_cannot_run, char *msg, size_t msg_size);
/* Spawn argv with env in cwd, stdin from in_fd (or /dev/null when -1), stdout/stderr into
 * out_fd/err_fd, in a session of its own, with default signal state. */
int agent_spawn(char *const *argv, char *const *env, const char *cwd, int in_fd, int out_fd, int err_fd,
                pid_t *ret_pid);
/* Wait status to code or 128+signal. */
int agent_exit_code(int wstatus);

/* Handlers (agent_proto.c dispatches to them): each packs an answer, or for exec nothing yet. */
void agent_workload_start(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
void agent_workload_signal(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
void agent_workload_status(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
void agent_exec_request(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
/* agent_identity.c: a template clone's identity (entropy, clock, hostname, MAC, address). */
void agent_identity_request(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
void agent_proc_create(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
void agent_proc_start(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
void agent_proc_resize(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
void agent_proc_signal(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
void agent_proc_list(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk);
/* proc.stdin has no answer: a malformed one is logged and dropped. */
void agent_proc_stdin(agent_state_t *s, const msgpack_object *req);
/* False while some proc holds more than AGENT_PROC_STDIN_MAX bytes of stdin: stop reading the host. */
bool agent_procs_take_stdin(const agent_state_t *s);
/* A new proc in a free slot (or the oldest exited one's); NULL when all are in use. */
agent_proc_t *agent_proc_new(agent_state_t *s);
/* Out of the table and freed. */
void agent_proc_drop(agent_state_t *s, agent_proc_t *p);
/* Every pid below ours (the agent's descendants, orphans included when we are PID 1), into
 * *ret (malloc'd). */
int agent_descendants(uint32_t **ret, size_t *ret_n);
/* The one error answer every handler packs: {type: error, id, code, message}; without id (NULL)
 * when the request had none we could read (agent_proto.c). */
void agent_pack_error(msgpack_packer *pk, const uint64_t *id, const char *code, const char *message);
/* A child was reaped: true when it was the workload's or a proc's (an exec's). */
bool agent_child_exited(agent_state_t *s, pid_t pid, int wstatus);
/* Loop hooks: the fds to poll, what came in (procs' output goes out through emit, counted in
 * s->out_backlog), and what is finished (answers to queue). */
#define AGENT_IO_POLLFDS_MAX (2 + 3 * AGENT_PROCS_MAX)
typedef void (*agent_emit_fn)(msgpack_sbuffer *body, void *userdata);
size_t agent_io_pollfds(agent_state_t *s, struct pollfd *p, size_t n);
void agent_io_ready(agent_state_t *s, const struct pollfd *p, size_t n, agent_emit_fn emit, void *userdata);
/* Pack finished execs' answers, procs' exits and the workload's exit (callback per frame);
 * returns the poll timeout in ms (-1 none). */
int agent_io_finish(agent_state_t *s, agent_emit_fn emit, void *userdata);
void agent_proc_free(agent_proc_t *p);

/* ---- agent_pty.c: terminals for procs ------------------------------------------------------- */

/* A new pty of rows x cols: the master (non-blocking) and its slave, both close-on-exec. */
int agent_pty_open(uint16_t rows, uint16_t cols, int *ret_master, int *ret_slave);
int agent_pty_resize(int master, uint16_t rows, uint16_t cols);
/* The slave's VEOF character (^D unless changed): what "end of input" is on a terminal. */
char agent_pty_veof(int master);

#define AGENT_SHUTDOWN_GRACE_MAX_MS (10u * 60u * 1000u)

/* Answer one request (a map with a string "type", as the frame reader guarantees) into
 * reply, a packed body; every request gets exactly one answer, now or (exec: reply left
 * empty) once it is done. Returns 0, or -ENOMEM. */
int agent_proto_handle(agent_state_t *s, const msgpack_object *req, msgpack_sbuffer *reply);
void agent_proto_ready(uint64_t boot_ms, msgpack_sbuffer *body);
/* id NULL: an error that answers no particular request. */
void agent_proto_error(const uint64_t *id, const char *code, const char *message, msgpack_sbuffer *body);

/* ---- agent_loop.c: serve the channel, reap children ------------------------------------- */

/* Returns only when a shutdown was requested or the workload exited and was reported (0), or
 * on a fatal error. */
int agent_loop_run(agent_channel_t *c, agent_state_t *s);
/* Reap every exited child; returns how many. */
int agent_reap_children(void);

/* ---- agent_power.c: the end of the VM --------------------------------------------------- */

/* SIGTERM everything, wait grace_ms, SIGKILL, sync, then power off; never returns. Where
 * the kernel cannot power off (no ACPI) it resets instead: QEMU runs with -no-reboot, so
 * either way the VM ends. */
_Noreturn void agent_power_off(uint64_t grace_ms);

/* ---- agent_stats.c: the guest's view for the host's sampler (stats frame) ----------------- */

typedef struct agent_stats {
        uint64_t mem_total, mem_available; /* bytes */
        double load[3];                    /* 1, 5 and 15 minutes */
} agent_stats_t;

/* /proc/meminfo's MemTotal and MemAvailable, /proc/loadavg's first three fields; -EBADMSG when
 * one is missing. */
int agent_stats_parse(const char *meminfo, const char *loadavg, agent_stats_t *ret);
/* The whole answer to {type: stats, id}: the guest_stats fields, or an error `failed`. */
void agent_stats_answer(uint64_t id, msgpack_packer *pk);
