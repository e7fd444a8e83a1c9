/* agent_proc.h: the process frames of agent protocol 2 (proto/SCHEMA.md, "Agent"): several
 * processes per guest, each with streamed stdio, an optional pty, signals and its exit status.
 *
 * Every frame has a pack function (the side that sends it) and an unpack function (the side
 * that receives it): both live here so that husk-agent and husk-oci share one codec. Unpackers
 * are the guest/host boundary: bounded, -EBADMSG for anything out of shape (output cleared, and
 * the offending field's name in *ret_field when given), never a crash. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/names.h" /* AGENT_FRAME_PROC_*: the frame types */

#define AGENT_PROC_NAME_MAX 64        /* a proc's name: 1..64 of [A-Za-z0-9._-] */
#define AGENT_PROC_DATA_MAX 65536u    /* bytes of one proc.stdin or proc.output frame */
#define AGENT_PROC_PATH_MAX 4096      /* cwd */
#define AGENT_PROC_GIDS_MAX 256       /* additional_gids */
#define AGENT_PROC_RLIMITS_MAX 16     /* the kernel has 16 (RLIM_NLIMITS) */
#define AGENT_PROC_TTY_MAX 65535u     /* rows, cols (struct winsize holds u16) */
#define AGENT_PROC_ID_MAX 4294967294u /* uid, gid: (uid_t)-1 means "unchanged" to the kernel */
#define AGENT_PROCS_MAX 256           /* procs a guest keeps (and a proc.list answer lists) */
#define AGENT_PROC_PIDS_MAX 16384     /* pids in a proc.list answer */

typedef char agent_proc_name_t[AGENT_PROC_NAME_MAX + 1];

bool agent_proc_name_valid(const char *name);

typedef struct agent_rlimit {
        int resource; /* RLIMIT_* */
        uint64_t soft, hard;
} agent_rlimit_t;

/* "RLIMIT_NOFILE" -> RLIMIT_NOFILE, -EINVAL for a name Linux does not have. */
int agent_rlimit_from_string(const char *s);
const char *agent_rlimit_to_string(int resource); /* NULL when unknown */

/* proc.create, host to guest. */
typedef struct agent_proc_create {
        uint64_t id;
        agent_proc_name_t proc;
        char **args; /* >= 1 */
        char **env;  /* "K=V" */
        char *cwd;   /* absolute */
        uint32_t uid, gid;
        uint32_t *gids; /* additional_gids */
        size_t n_gids;
        bool terminal;
        uint16_t rows, cols; /* terminal only */
        agent_rlimit_t *rlimits;
        size_t n_rlimits;
        bool no_new_privileges;
        bool start; /* exec at once; false: wait for proc.start */
} agent_proc_create_t;

void agent_proc_create_clear(agent_proc_create_t *c);
void agent_proc_create_pack(msgpack_packer *pk, const agent_proc_create_t *c);
int agent_proc_create_unpack(const msgpack_object *o, agent_proc_create_t *c, const char **ret_field);

/* {type, id, proc[, pid]}: proc.create's answer (with pid), and proc.start's request and answer,
 * proc.resize's and proc.signal's answers (without). */
typedef struct agent_proc_ref {
        uint64_t id;
        agent_proc_name_t proc;
        bool has_pid;
        uint32_t pid;
} agent_proc_ref_t;

void agent_proc_ref_pack(msgpack_packer *pk, const char *type, const agent_proc_ref_t *r);
int agent_proc_ref_unpack(const msgpack_object *o, const char *type, agent_proc_ref_t *r, const char **ret_field);

/* proc.stdin, host to guest, no answer: data, or eof (then no data). data points into the
 * unpacked object (borrowed). */
typedef struct agent_proc_stdin {
        agent_proc_name_t proc;
        const uint8_t *data;
        size_t size;
        bool eof;
} agent_proc_stdin_t;

void agent_proc_stdin_pack(msgpack_packer *pk, const agent_proc_stdin_t *s);
int agent_proc_stdin_unpack(const msgpack_object *o, agent_proc_stdin_t *s, const char **ret_field);

/* proc.output, guest to host, unsolicited. data borrowed as for stdin. */
typedef struct agent_proc_output {
        agent_proc_name_t proc;
        int fd; /* 1 or 2 */
        const uint8_t *data;
        size_t size;
} agent_proc_output_t;

void agent_proc_output_pack(msgpack_packer *pk, const agent_proc_output_t *out);
int agent_proc_output_unpack(const msgpack_object *o, agent_proc_output_t *out, const char **ret_field);

/* proc.resize, host to guest. */
typedef struct agent_proc_resize {
        uint64_t id;
        agent_proc_name_t proc;
        uint16_t rows, cols;
} agent_proc_resize_t;

void agent_proc_resize_pack(msgpack_packer *pk, const agent_proc_resize_t *r);
int agent_proc_resize_unpack(const msgpack_object *o, agent_proc_resize_t *r, const char **ret_field);

/* proc.signal, host to guest. */
typedef struct agent_proc_signal {
        uint64_t id;
        agent_proc_name_t proc;
        uint32_t signal; /* 1..64 */
        bool all;        /* every process of the container, as runc kill --all */
} agent_proc_signal_t;

void agent_proc_signal_pack(msgpack_packer *pk, const agent_proc_signal_t *s);
int agent_proc_signal_unpack(const msgpack_object *o, agent_proc_signal_t *s, const char **ret_field);

/* proc.exited, guest to host, unsolicited, after the proc's last proc.output. */
typedef struct agent_proc_exited {
        agent_proc_name_t proc;
        int64_t status; /* exit code, or 128+signal */
} agent_proc_exited_t;

void agent_proc_exited_pack(msgpack_packer *pk, const agent_proc_exited_t *e);
int agent_proc_exited_unpack(const msgpack_object *o, agent_proc_exited_t *e, const char **ret_field);

/* proc.list: the request is {type, id} (agent_proc_list_request_pack); the answer this. */
typedef enum agent_proc_state {
        AGENT_PROC_CREATED,
        AGENT_PROC_RUNNING,
        AGENT_PROC_EXITED,
        _AGENT_PROC_STATE_MAX,
} agent_proc_state_t;

const char *agent_proc_state_to_string(agent_proc_state_t s);

typedef struct agent_proc_info {
        agent_proc_name_t proc;
        uint32_t pid;
        agent_proc_state_t state;
        bool has_status;
        int64_t status;
} agent_proc_info_t;

typedef struct agent_proc_list {
        uint64_t id;
        agent_proc_info_t *procs;
        size_t n_procs;
        uint32_t *pids; /* every process of the container: the procs and their descendants */
        size_t n_pids;
} agent_proc_list_t;

void agent_proc_list_request_pack(msgpack_packer *pk, uint64_t id);
void agent_proc_list_clear(agent_proc_list_t *l);
void agent_proc_list_pack(msgpack_packer *pk, const agent_proc_list_t *l);
int agent_proc_list_unpack(const msgpack_object *o, agent_proc_list_t *l, const char **ret_field);
