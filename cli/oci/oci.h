/* oci.h: husk-oci, the runc-compatible OCI runtime: global options, the verbs, and what the verb files share. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli/oci/oci_spec.h"
#include "lib/util.h"

#define OCI_DEFAULT_ROOT "/run/husk-oci"
#define OCI_ID_MAX 1024u /* runc takes any id that is a valid file name; so do we, within this */
#define OCI_STATE_FILE "state.json"
#define OCI_CONTROL_SOCKET "control.sock"
#define OCI_DEFAULT_CPUS 1
#define OCI_DEFAULT_MEMORY_MIB 256

/* Exit codes: runc exits 1 on any error; usage errors too. */
#define OCI_EXIT_OK 0
#define OCI_EXIT_FAILURE 1

/* The global options (before the verb), as runc and runV take them, plus husk's VM options. */
typedef struct oci_ctx {
        const char *root;         /* --root: one directory per container */
        const char *log;          /* --log FILE: errors (and debug lines) go there; NULL: stderr only */
        bool log_json;            /* --log-format json */
        bool debug;               /* --debug */
        const char *config;       /* --config: husk's config file (kit paths, qemu binary, accel) */
        const char *kernel;       /* --kernel; NULL: the config's kit.kernel */
        const char *initrd;       /* --initrd; NULL: the config's kit.initrd */
        const char *qemu;         /* --qemu; NULL: the config's runtime.qemu.binary_path */
        const char *accel;        /* --accel kvm|tcg|auto; NULL: the config's */
        uint32_t cpus;            /* --cpus: a VM's vCPUs when the spec sets no CPU quota */
        uint32_t memory_mib;      /* --memory: a VM's RAM when the spec sets no memory limit */
        const char *template_dir; /* --template DIR: VMs start as clones of templates kept there; NULL: cold */
        const char *argv0;        /* this program, for the holder's re-exec */
} oci_ctx_t;

typedef struct oci_verb {
        const char *name;
        int (*run)(oci_ctx_t *ctx, int argc, char **argv);
        const char *help;
} oci_verb_t;

/* ---- messages (oci_log.c) ---------------------------------------------------------------------- */

void oci_log_setup(const oci_ctx_t *ctx);
/* An error for the caller: a {"level":"error","msg":...,"time":...} line in --log (the shim shows
 * the last one), and the message on stderr. Returns OCI_EXIT_FAILURE. */
int oci_error(const char *fmt, ...) _printf_(1, 2);
/* The same for helpers that return a negative number on failure: -1. */
#define oci_fail(...) (-oci_error(__VA_ARGS__))
/* Something the caller should know that did not fail the verb: a warning line in --log. */
void oci_warning(const char *fmt, ...) _printf_(1, 2);
/* A debug line in --log, only with --debug. */
void oci_debug(const char *fmt, ...) _printf_(1, 2);
/* --log's JSON line for level/msg at unix time ms, into a new string (no newline). */
char *oci_log_line(const char *level, const char *msg, uint64_t unix_ms, bool json);

/* ---- signals (oci_signal.c) ----------------------------------------------------------------------- */

/* "15", "TERM", "SIGTERM", "sigterm", "SIGRTMIN+3" -> 15...; -EINVAL for anything else. */
int oci_signal_parse(const char *s);
/* A holder's signals: every one it may forward to the guest blocked and read from *ret_sfd (a
 * non-blocking signalfd); faults stay faults and SIGPIPE is ignored. */
int oci_signals_to_forward(int *ret_sfd);

/* ---- containers on disk (oci_state.c) ---------------------------------------------------------- */

typedef enum oci_status {
        OCI_STATUS_CREATING,
        OCI_STATUS_CREATED,
        OCI_STATUS_RUNNING,
        OCI_STATUS_PAUSED,
        OCI_STATUS_STOPPED,
        _OCI_STATUS_MAX,
} oci_status_t;

const char *oci_status_name(oci_status_t s);
int oci_status_from_name(const char *s); /* -EINVAL for an unknown name */

/* state.json in --root/ID: what `state` and `list` print, and how to reach the holder. */
typedef struct oci_state {
        char *id;
        char *bundle;        /* absolute */
        char *rootfs;        /* absolute */
        char *created;       /* RFC 3339 with ns, as runc prints it */
        char *owner;         /* "" as runc (rootful) */
        oci_status_t status; /* as the holder last wrote it */
        pid_t pid;           /* the holder (the pid-file's process) */
        uint64_t pid_start;  /* its start time (clock ticks after boot): a reused pid is not ours */
        int exit_status;     /* once stopped: code or 128+signal; -1 unknown */
} oci_state_t;

bool oci_id_valid(const char *id);
/* --root/ID into buf; -EINVAL for an invalid id, -ENAMETOOLONG. */
int oci_container_dir(const oci_ctx_t *ctx, const char *id, char *buf, size_t size);
int oci_state_write(const char *dir, const oci_state_t *s);
int oci_state_read(const char *dir, oci_state_t *ret);
void oci_state_done(oci_state_t *s);
/* The status as callers see it: a holder that is gone means stopped, whatever the file says. */
oci_status_t oci_state_status(const oci_state_t *s);
/* state's JSON, exactly runc's keys: pid 0 once stopped. */
json_t *oci_state_json(const oci_state_t *s);
/* Load ID's state; an unknown id is -ENOENT. */
int oci_state_load(const oci_ctx_t *ctx, const char *id, char *dir, size_t dir_size, oci_state_t *ret);
/* ps --format json: the host pids (the holders) as a JSON array. */
char *oci_ps_json(const pid_t *pids, size_t n);
/* Start time of pid (field 22 of /proc/PID/stat); -ESRCH when gone. */
int oci_pid_start_time(pid_t pid, uint64_t *ret);
/* "2026-12-07T11:29:04.123456789Z" for now. */
void oci_now_rfc3339(char *buf, size_t size);

/* ---- create's helpers, shared with exec (oci_create.c) ---------------------------------------------- */

/* The pid, atomically (temp file and rename), as runc writes it; NULL path: nothing. */
int oci_write_pid_file(const char *path, pid_t pid);
/* Read a forked holder's verdict on fd until it closes it: 0 for "OK", else the error is
 * reported (what when it said nothing) and the holder reaped; returns -1 then. */
int oci_wait_ready(int fd, pid_t holder, const char *what);

/* ---- the verbs (oci_verbs.c, oci_create.c, oci_exec.c) ------------------------------------------ */

int oci_verb_spec(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_state(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_list(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_features(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_kill(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_delete(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_ps(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_pause(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_resume(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_update(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_create(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_start(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_run(oci_ctx_t *ctx, int argc, char **argv);
int oci_verb_exec(oci_ctx_t *ctx, int argc, char **argv);
