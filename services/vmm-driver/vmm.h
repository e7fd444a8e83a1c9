/* vmm.h: vmm-driver's internal contracts: daemon state, the instance object, and what each vmm_*.c offers the others. */
#pragma once

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/bus.h"
#include "lib/config.h"
#include "lib/daemon.h"
#include "proto/agent_frame.h"
#include "proto/instance.h"
#include "proto/instance_record.h"
#include "proto/metrics.h"

typedef struct vmm vmm_t;
typedef struct vmm_instance vmm_instance_t;

#include "services/vmm-driver/vmm_runtime.h"

/* ---- instance.json (vmm_record.c; its codec is proto/instance_record.c) ---------------------- */

int vmm_record_save(const char *dir, const instance_record_t *r);
int vmm_record_load(const char *dir, instance_record_t *r);

/* ---- processes (vmm_proc.c) ---------------------------------------------------------------- */

/* Field 22 (starttime) of a /proc/<pid>/stat line; comm (field 2) may hold spaces and ')'. */
int vmm_proc_parse_start_time(const char *stat, uint64_t *ret);
/* The same line's utime + stime (fields 14 and 15, clock ticks) and starttime (22). */
int vmm_proc_parse_stat(const char *stat, uint64_t *ret_ticks, uint64_t *ret_start);
int vmm_proc_start_time(pid_t pid, uint64_t *ret);
int vmm_pidfd_open(pid_t pid); /* fd (O_CLOEXEC) or -errno */
int vmm_pidfd_kill(int pidfd, int sig);
bool vmm_pidfd_exited(int pidfd);
/* Wait status of an exited process through PIDFD_GET_INFO (Linux >= 6.15), also for
 * non-children once their parent reaped them. -ENODATA while not yet known, -EOPNOTSUPP on
 * older kernels. */
int vmm_pidfd_exit_status(int pidfd, int *ret_wstatus);

/* name with a '/' is taken as is; otherwise searched in path_env (like execvp). */
int vmm_find_executable(const char *name, const char *path_env, char **ret);
/* The first line `binary --version` prints (runtime.list, husk doctor). Runs it to completion:
 * at setup only (start and SIGHUP), never per request. */
int vmm_binary_version(const char *binary, char **ret);
/* A VMM, detached: own session, cwd dir, stdin /dev/null, stdout+stderr appended to
 * dir/output, no other fds, default signal mask and dispositions. Exec failures are returned
 * here. */
int vmm_spawn(const char *dir, char *const *argv, const char *output, pid_t *ret_pid);

void vmm_strv_free(char **v);
static inline void vmm_strv_freep(char ***v) {
        vmm_strv_free(*v);
        *v = NULL;
}

/* ---- network (vmm_net.c) ------------------------------------------------------------------ */

/* An instance's network as netd gave it (net.attach). */
typedef struct vmm_net {
        bool attached; /* false: no netd on this host, the VM runs without a NIC */
        char tap[16];
        char mac[18];
        char host_ip[16]; /* the guest's gateway */
        char guest_ip[16];
        unsigned prefix;
} vmm_net_t;

/* ---- virtiofsd (vmm_fs.c) ---------------------------------------------------------------- */

#define VMM_FS_SOCKET "vfs.sock"
#define VMM_FS_TAG "rootfs"

/* How much of a VMM's or virtiofsd's own output an error or exit message quotes (its last lines). */
#define VMM_OUTPUT_TAIL_MAX 512

/* "rootfs" for a directory, "bundle" for one with config.json and rootfs/; NULL (0) when the
 * image is not a directory (disk mode, no workload). */
int vmm_fs_workload_mode(const char *image, const char **ret_mode);
/* Any virtiofsd export: socket and log are file names in dir; its pid and start time go to
 * *ret_pid and *ret_start_time. */
typedef struct vmm_fs_export {
        const char *socket;
        const char *log;
        const char *source; /* absolute host directory */
        bool readonly;      /* also read-only on the host side: a bind mount in its own mount namespace */
        int64_t *ret_pid;
        uint64_t *ret_start_time;
} vmm_fs_export_t;
/* Start virtiofsd for e, without waiting for it: dir/e->socket listens on return (made here and
 * handed to virtiofsd), so the VMM may be spawned at once. A source that is not a directory is
 * refused here; what goes wrong later in virtiofsd, vmm_fs_failed says. */
int vmm_fs_start_export(const char *dir, const vmm_fs_export_t *e, char **ret_error);
/* The kit's image: source exported read-only as dir/VMM_FS_SOCKET, pid in rec. */
int vmm_fs_start(const char *dir, const char *source, instance_record_t *rec, char **ret_error);
/* 1 when one of rec's virtiofsds (our children) has failed (a status other than 0, a signal):
 * it is reaped, its pid cleared, and *ret_why says why in its own words (status and log); 0
 * when none has. For the exit of a VMM that never ran: one whose virtiofsd is gone cannot
 * start, and its own words would only say that a socket closed. */
int vmm_fs_failed(const char *dir, instance_record_t *rec, char **ret_why);
/* The file name, in the instance directory, of the log of the virtiofsd serving volume tag. */
void vmm_fs_volume_log(const char *tag, char *buf, size_t size);
/* Kill the recorded virtiofsds (the image's and the volumes') if each is still the one we
 * started, and reap those that are our children. */
void vmm_fs_stop(instance_record_t *rec);

/* ---- volumes (vmm_volumes.c) ---------------------------------------------------------------- */

/* Tags and destinations unique, bind sources existing directories, named volumes' made; every
 * source replaced by its real path (symlinks resolved). */
int vmm_volumes_check(instance_spec_t *s, char **ret_error);
/* "<tag>.sock": its virtiofsd's socket in the instance directory. */
void vmm_volume_socket(const volume_spec_t *v, char *buf, size_t size);
/* What volume k's virtiofsd exports; a config or secret volume's files are written first into
 * <files_dir>/<instance id>/<tag>, on a tmpfs of the instance's own (secrets never touch a
 * disk). The buffers hold the strings *ret points to. */
int vmm_volume_export(vmm_t *d, const char *dir, instance_record_t *rec, size_t k, char *socket, size_t socket_size,
                      char *log, size_t log_size, char *files_dir, size_t files_dir_size, vmm_fs_export_t *ret,
                      char **ret_error);
/* The config and secret files of an instance whose VM is gone: its tmpfs unmounted, removed. */
void vmm_volumes_remove_files(vmm_t *d, const instance_spec_t *s);
/* A config or secret volume of one file named as its destination's last component: that file. */
const char *vmm_volume_single_file(const volume_spec_t *v);

int vmm_net_open(vmm_t *d);
/* net.attach's end: error 0 with net set, or -EADDRINUSE (a host port is taken:
 * PortAllocationFailed), -EAGAIN (netd unavailable, or gone: -ECANCELED never comes here as
 * such), -EINVAL (refused as invalid), with why saying it. Runs from the loop. */
typedef void (*vmm_net_attach_fn)(int error, const vmm_net_t *net, const char *why, void *userdata);
/* Ask netd for the instance's TAP and /30 (and its published ports) without waiting: 0, fn runs
 * later. 1: no netd on this host, the VM runs without a network (fn never runs). <0: refused at
 * once (ports without netd: -EAGAIN), *ret_error says why. take_tap: a pool clone's TAP
 * (hkp...) netd renames into the instance's instead of creating one; NULL for a new TAP. */
int vmm_net_attach(vmm_t *d, const instance_spec_t *s, const char *take_tap, vmm_net_attach_fn fn, void *userdata,
                   uint64_t *ret_id, char **ret_error);
/* A netd serves this host: instances get a network (vmm_net_attach answers 0, not 1). */
bool vmm_net_available(const vmm_t *d);
/* Best effort, not waited for: netd also detaches on instance.removed. */
void vmm_net_detach(vmm_t *d, const char *instance_id);

/* ---- exits (vmm_watch.c) ------------------------------------------------------------------ */

/* What is known about a VMM's exit; vmm_exit_reason() makes the reason of it. */
typedef struct vmm_exit_facts {
        bool stop_requested;         /* we asked (instance.stop) */
        const char *shutdown_reason; /* the shutdown reason the VMM announced, NULL if none */
        bool status_known;
        int wstatus; /* wait status, valid when status_known */
} vmm_exit_facts_t;

/* "stopped", "guest-shutdown", "guest-reset", "guest-panic", "killed" or "crashed"
 * (SCHEMA.md, instance), for every runtime. */
const char *vmm_exit_reason(const vmm_exit_facts_t *f);
/* Exit code, 128+signal, or -1 when unknown. */
int64_t vmm_exit_status(const vmm_exit_facts_t *f);

int vmm_watch_start(vmm_instance_t *i);
void vmm_watch_stop(vmm_instance_t *i);
void vmm_watch_arm_kill(vmm_instance_t *i, uint64_t delay_ms);

/* ---- agent channel (vmm_agent.c) ------------------------------------------------------------- */

/* Answer to a request: body is the answer frame, or NULL with error < 0 when the connection
 * was lost (-ECONNRESET) or the request timed out (-ETIMEDOUT). */
typedef void (*vmm_agent_reply_fn)(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata);
/* Adds exactly n_keys request-specific key/value pairs to a request frame (after type, id). */
typedef void (*vmm_agent_pack_fn)(msgpack_packer *pk, void *userdata);

typedef struct vmm_agent_call {
        uint64_t id;
        char type[16];
        uint64_t deadline_ms; /* monotonic; 0 = no timeout */
        vmm_agent_reply_fn fn;
        void *userdata;
} vmm_agent_call_t;

typedef struct vmm_agent {
        int fd;
        bool connected;   /* frames flow (after the runtime's handshake, if any) */
        bool handshaking; /* connected, the runtime's handshake line sent, its answer awaited */
        bool writing;     /* poller also waits for POLLOUT */
        bool answered;    /* the agent answered a hello since vmm-driver started watching the VM */
        int timer;        /* reconnect backoff; 0 when none */
        int sweep_timer;  /* expires calls past their deadline; 0 when none */
        unsigned delay_ms;
        agent_frame_reader_t reader;
        msgpack_sbuffer out; /* bytes not yet accepted by the socket */
        size_t out_off;
        uint64_t next_id;
        vmm_agent_call_t *calls; /* in flight, by id: exec will multiplex many */
        size_t n_calls, cap_calls;
} vmm_agent_t;

void vmm_agent_start(vmm_instance_t *i);
void vmm_agent_stop(vmm_instance_t *i);
/* Send {type, id, ...pack} and call fn with the answer (timeout_ms 0: none). Returns the
 * id (> 0) or -errno. */
int64_t vmm_agent_request(vmm_instance_t *i, const char *type, size_t n_keys, vmm_agent_pack_fn pack, void *pack_data,
                          uint64_t timeout_ms, vmm_agent_reply_fn fn, void *userdata);
int vmm_agent_ping(vmm_instance_t *i);
/* Whether an answer frame of frame_type may complete a call of call_type. */
bool vmm_agent_answers(const char *call_type, const char *frame_type);
/* Read the frames already in the socket (the workload's exit before the VM ended). */
void vmm_agent_drain(vmm_instance_t *i);
int vmm_agent_shutdown(vmm_instance_t *i, uint64_t grace_ms);

/* ---- the workload (vmm_workload.c) ------------------------------------------------------------ */

#define VMM_EXEC_TIMEOUT_MAX_MS (24u * 3600u * 1000u)
/* Send the start request (kit mode, once the agent said hello); nothing otherwise. */
void vmm_workload_start(vmm_instance_t *i);
/* The agent's unsolicited {type: "exited", status}: record it as the instance's exit status. */
void vmm_workload_on_exited(vmm_instance_t *i, const msgpack_object *body);
/* instance.exec and instance.signal: answered later through d (see bus_request_defer()). */
int vmm_workload_exec(bus_request_t *req, vmm_instance_t *i);
int vmm_workload_signal(bus_request_t *req, vmm_instance_t *i);
int vmm_workload_status(bus_request_t *req, vmm_instance_t *i);
/* "husk-agent on instance X is not reachable over virtio-serial (agent.sock): ..." */
void vmm_workload_unreachable(char *buf, size_t size, const vmm_instance_t *i, int error);
/* instance.warning: advice for operators about this instance. */
void vmm_publish_warning(vmm_instance_t *i, const char *message);

/* ---- metrics (vmm_metrics.c) ---------------------------------------------------------------- */

/* An instance's sampler state: the last CPU reading (for CPU%) and the round's sample. */
typedef struct vmm_sample {
        uint64_t prev_ticks;   /* utime + stime at the previous sample */
        uint64_t prev_boot_ms; /* CLOCK_BOOTTIME then; 0: no sample yet */
        uint64_t round;        /* the round m belongs to (0: none) */
        instance_metrics_t m;
} vmm_sample_t;

/* /proc/<pid>/status: VmRSS (bytes; 0 when absent) and Threads; io: read_bytes and write_bytes.
 * -EBADMSG when a field is missing. (stat: vmm_proc_parse_stat.) */
int vmm_metrics_parse_status(const char *status, uint64_t *ret_rss_bytes, uint64_t *ret_threads);
int vmm_metrics_parse_io(const char *io, uint64_t *ret_read, uint64_t *ret_write);
/* Sample every interval_ms (0: never); restarts the timer. */
int vmm_metrics_start(vmm_t *d, uint64_t interval_ms);
void vmm_metrics_stop(vmm_t *d);
/* SIGHUP: a new vmm_driver.metrics_interval re-arms the timer. */
void vmm_metrics_reload(vmm_t *d, uint64_t interval_ms);

/* ---- instances (vmm_instance.c) ------------------------------------------------------------- */

struct vmm_instance {
        vmm_t *vmm;
        instance_record_t rec;
        char *dir;                   /* <instances_dir>/<id> */
        int pidfd;                   /* -1 when not watched */
        bool is_child;               /* spawned by this process: waitid() works */
        int kill_timer;              /* SIGKILL after stop_timeout; 0 when none */
        int exit_timer;              /* waiting for an adopted VMM's exit status; 0 when none */
        uint64_t exit_info_deadline; /* monotonic ms */
        const vmm_runtime_t
                *runtime;   /* the row of the spec's runtime; NULL: none (an exited record of an unknown one) */
        void *runtime_data; /* the runtime's own per-instance state (owned by it, see vmm_runtime.h) */
        vmm_agent_t agent;
        vmm_net_t net;       /* netd's answer at create, for a clone's identity (zero when adopted or none) */
        vmm_sample_t sample; /* vmm_metrics.c */
};

int vmm_instance_new(vmm_t *d, const char *dir, vmm_instance_t **ret);
/* Stops watching at once (the VMM keeps running); the memory is released on the next loop
 * iteration, so a caller may still read i until it returns to the loop. */
void vmm_instance_free(vmm_instance_t *i);
/* Release what vmm_instance_free deferred; for shutdown, outside the loop. */
void vmm_reap_now(vmm_t *d);
vmm_instance_t *vmm_instance_get(vmm_t *d, const char *id);
/* The end of a create: i (error 0), or error < 0 and why, as vmm_instance_create() says. Runs once. */
typedef void (*vmm_create_fn)(vmm_t *d, vmm_instance_t *i, int error, const char *why, void *userdata);
/* Validate, then go on without blocking the loop: netd's net.attach, the directory, virtiofsd,
 * spawn, watch; fn runs at the end (possibly before this returns). On failure nothing is left
 * behind. Returns 0, or < 0 when refused at once (fn never runs; *ret_error says why, caller
 * frees). Errors: -EINVAL bad spec, -EEXIST id taken, -EADDRINUSE a published port is taken,
 * -EAGAIN netd unavailable, -ECANCELED vmm-driver stopping, else internal. Takes *spec. */
int vmm_instance_create(vmm_t *d, instance_spec_t **spec, vmm_create_fn fn, void *userdata, char **ret_error);
/* Creates in flight: ended with -ECANCELED (shutdown). */
void vmm_instance_cancel_creates(vmm_t *d);
int vmm_instance_stop(vmm_instance_t *i, bool remove);
/* Removes the directory and forgets i (see vmm_instance_free); -EBUSY while the VMM is alive. */
int vmm_instance_remove(vmm_instance_t *i);
int vmm_instance_save(vmm_instance_t *i);
bool vmm_instance_alive(const vmm_instance_t *i);
/* Connect a unix stream socket to a file of the instance directory (non-blocking, cloexec). */
int vmm_instance_connect(vmm_instance_t *i, const char *name);

/* Transitions, called by the channels; each publishes its event and saves the record. */
void vmm_instance_on_running(vmm_instance_t *i);
void vmm_instance_on_ready(vmm_instance_t *i);
void vmm_instance_on_shutdown_event(vmm_instance_t *i, const char *reason);
/* Removes i (see vmm_instance_remove) when it was to be removed on exit. */
void vmm_instance_on_exit(vmm_instance_t *i, const char *reason, int64_t status);

/* ---- adoption (vmm_adopt.c) ------------------------------------------------------------------ */

int vmm_adopt_all(vmm_t *d);

/* ---- bus (vmm_bus.c) -------------------------------------------------------------------------- */

extern const bus_method_t vmm_bus_methods[];
void vmm_publish(vmm_t *d, const char *type, const vmm_instance_t *i);
/* See vmm_publish_hold(): a little more than ZeroMQ's default reconnect interval. */
#define VMM_STARTUP_EVENT_HOLD_MS 300
/* Queue events until subscribers had time to (re)connect after we started. */
void vmm_publish_hold(vmm_t *d, uint64_t ms);
/* Send what is held now (shutdown). */
void vmm_publish_release(vmm_t *d);

/* ---- the daemon ---------------------------------------------------------------------------- */

struct vmm {
        husk_daemon_ctx_t *ctx;
        zloop_t *loop;
        bus_pub_t *pub;
        bus_server_t *server;
        zhashx_t *instances; /* instance_id -> vmm_instance_t* (owned) */
        char *instances_dir;
        char *files_dir; /* <runtime_dir>/volume-files: a tmpfs per instance with config and secret files */
        void *runtime_state[VMM_RUNTIMES_MAX]; /* each runtime's own state, by row (vmm_runtime.c) */
        zlistx_t *held;                        /* events waiting for vmm_publish_hold to end */
        int hold_timer;
        zlistx_t *graveyard; /* freed instances whose memory goes on the next iteration */
        int reap_timer;
        bus_client_t *netd; /* net.attach / net.detach, asynchronous */
        zhashx_t *creating; /* instance_id -> its create in flight (vmm_instance.c; owned there) */
        /* The sampler (vmm_metrics.c): one timer, and the round in flight. */
        uint64_t metrics_interval_ms;
        int metrics_timer;          /* 0: not sampling */
        int metrics_deadline_timer; /* the round's end; 0 when none */
        uint64_t metrics_round;
        bool metrics_round_open;
        unsigned metrics_pending;        /* answers the open round waits for */
        struct vmm_templates *templates; /* vmm_template.c; NULL: templates off */
};

static inline const husk_config_t *vmm_config(const vmm_t *d) { return d->ctx->config; }

int vmm_new(husk_daemon_ctx_t *ctx, vmm_t **ret);
/* SIGHUP: accepts a new config unless it moves the instances directory. */
int vmm_reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh);
void vmm_free(vmm_t *d);
static inline void vmm_freep(vmm_t **d) {
        if (*d)
                vmm_free(*d);
        *d = NULL;
}
