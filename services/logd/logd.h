/* logd.h: husk-logd's internal contracts: lines and levels, the store, readers, instances, queries. */
#pragma once

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/bus.h"
#include "lib/config.h"
#include "lib/daemon.h"
#include "proto/deployment.h"
#include "proto/instance.h"
#include "proto/instance_record.h"

#define LOGD_LINE_MAX (16u * 1024u)     /* console bytes per entry; a longer line becomes several */
#define LOGD_BACKUPS_MAX 100            /* max_console_log_backups above this is clamped */
#define LOGD_CONSOLE_FILE "console.log" /* the name of a store's live file */

/* ---- levels and streams (logd_level.c) ------------------------------------------------------ */

/* Ordered by severity: a filter "level=L" keeps every entry at L or more severe; unknown is the
 * least severe, so level=unknown keeps everything. */
typedef enum logd_level {
        LOGD_LEVEL_ERROR,
        LOGD_LEVEL_WARNING,
        LOGD_LEVEL_INFO,
        LOGD_LEVEL_DEBUG,
        LOGD_LEVEL_UNKNOWN,
        _LOGD_LEVEL_MAX,
} logd_level_t;

typedef enum logd_stream {
        LOGD_STREAM_SYSTEM,   /* kernel, agent, firmware: anything not marked */
        LOGD_STREAM_WORKLOAD, /* kit mode: the workload's stdout/stderr, marked by the agent */
        _LOGD_STREAM_MAX,
} logd_stream_t;

const char *logd_level_name(logd_level_t l);   /* "error" ... "unknown" */
int logd_level_from_name(const char *s);       /* level, or -EINVAL */
const char *logd_stream_name(logd_stream_t s); /* "system", "workload" */

/* The level of one console line (sanitized, without its newline), by the rules of Ring's
 * classifier: kernel <N> priorities (also after a [ts] prefix) and crash markers; bracketed
 * markers in either case and lowercase "word:" markers; uppercase level words. The first
 * marker in the line wins; none: LOGD_LEVEL_UNKNOWN. Pure. */
logd_level_t logd_classify(const char *line, size_t len);

/* ---- lines and records (logd_line.c) -------------------------------------------------------- */

/* What the agent puts before a workload line on the console (proto/SCHEMA.md, "Console stream
 * convention"): stdout and stderr lines, both of stream "workload". */
#define LOGD_WORKLOAD_PREFIX "husk-workload: "
#define LOGD_WORKLOAD_ERR_PREFIX "husk-workload-err: "

/* One stored line. message points into someone else's buffer and is not NUL-terminated. */
typedef struct logd_entry {
        uint64_t ts;  /* capture time, unix ms; never decreases within an instance */
        uint64_t seq; /* capture-file offset just past the line: increasing, unique per instance */
        logd_level_t level;
        logd_stream_t stream;
        const char *message;
        size_t message_len;
} logd_entry_t;

/* Room logd_line_clean() may need for len raw bytes (each invalid byte becomes U+FFFD). */
#define LOGD_CLEAN_SIZE(len) (3 * (len) + 1)

/* Turn a raw console line (no '\n') into a message: a workload prefix is removed (and
 * *ret_stream says which stream it is), trailing '\r's and NUL bytes dropped, invalid UTF-8
 * replaced by U+FFFD. out must hold LOGD_CLEAN_SIZE(len) bytes. Returns the message length. */
size_t logd_line_clean(const char *raw, size_t len, char *out, logd_stream_t *ret_stream);

/* A store record is one text line: "<ts> <seq> <L><S> <message>\n", L one of "ewidu" (the
 * level's initial), S one of "sw" (the stream's). Returns its length including the newline;
 * -ENOBUFS when it does not fit in size. */
#define LOGD_RECORD_OVERHEAD 48 /* two u64, the flags and separators */
int logd_record_format(const logd_entry_t *e, char *buf, size_t size);
/* Parse one record line (without its newline); message points into line. -EBADMSG if malformed. */
int logd_record_parse(const char *line, size_t len, logd_entry_t *ret);

/* ---- splitting the capture file into lines (logd_split.c) ------------------------------------- */

/* Called for each line: line excludes the '\n'; end is the capture-file offset just past it. */
typedef int (*logd_line_fn)(const char *line, size_t len, uint64_t end, void *userdata);

typedef struct logd_splitter {
        char *pend; /* a partial line, at most LOGD_LINE_MAX bytes */
        size_t len;
        uint64_t base; /* capture-file offset of pend[0]: every byte before it was emitted */
} logd_splitter_t;

int logd_splitter_init(logd_splitter_t *s, uint64_t base);
void logd_splitter_clear(logd_splitter_t *s);
/* Feed the next n bytes of the capture file (those at base + len). Lines longer than
 * LOGD_LINE_MAX are cut at a UTF-8 boundary near the limit. A callback error stops the feed
 * and is returned: the bytes of the failing line are not consumed, so nothing is lost. */
int logd_splitter_feed(logd_splitter_t *s, const char *data, size_t n, logd_line_fn fn, void *userdata);
/* Emit the partial line (a VMM that exited, or a prompt waiting for input). */
int logd_splitter_flush(logd_splitter_t *s, logd_line_fn fn, void *userdata);

/* ---- a store's files as one stream (logd_files.c) -------------------------------------------- */

/* Several files read as their concatenation, oldest first: a store's backups and live file. */
typedef struct logd_files {
        int fd[LOGD_BACKUPS_MAX + 1];
        uint64_t start[LOGD_BACKUPS_MAX + 1]; /* offset of each file in the concatenation */
        size_t n;
        uint64_t total;
} logd_files_t;

/* Open paths (oldest first); missing ones are skipped: a rotation that a crash interrupted
 * leaves a gap in the numbering. Sizes are taken now. */
int logd_files_open(logd_files_t *f, const char *const *paths, size_t n);
/* A store directory: console.log.<backups> ... console.log.1, console.log. */
int logd_files_open_store(logd_files_t *f, const char *dir, unsigned backups);
void logd_files_close(logd_files_t *f);
/* Exactly n bytes at off of the concatenation; -EIO if the files shrank under us. */
int logd_files_read(const logd_files_t *f, uint64_t off, void *buf, size_t n);

#define LOGD_READ_LINE_MAX (1024u * 1024u) /* a longer line is not ours: readers skip it */

/* Lines backwards, from the end of the concatenation; a line may span files. */
typedef struct logd_rlines {
        const logd_files_t *files;
        char *buf;
        size_t cap;
        uint64_t bstart;   /* stream offset of buf[0] */
        uint64_t line_end; /* where the next line to return ends (its '\n' is there) */
        bool at_start;     /* the previous line started at offset 0: nothing before it */
        bool partial;      /* the stream does not end with '\n': the first line returned is partial */
} logd_rlines_t;

int logd_rlines_init(logd_rlines_t *r, const logd_files_t *files);
void logd_rlines_clear(logd_rlines_t *r);
/* 1 with the previous line (valid until the next call) and its start offset, 0 at the
 * beginning, <0 on error. */
int logd_rlines_prev(logd_rlines_t *r, const char **ret, size_t *ret_len, uint64_t *ret_start);

/* Complete lines forwards from an offset; a final line without '\n' is never returned. */
typedef struct logd_flines {
        const logd_files_t *files;
        char *buf;
        size_t cap, block;
        uint64_t bstart; /* stream offset of buf[0] */
        size_t blen;     /* bytes in buf */
        uint64_t pos;    /* stream offset of the next line */
} logd_flines_t;

/* block: bytes read at a time (small for probes, large for scans). */
int logd_flines_init(logd_flines_t *r, const logd_files_t *files, uint64_t start, size_t block);
void logd_flines_clear(logd_flines_t *r);
int logd_flines_next(logd_flines_t *r, const char **ret, size_t *ret_len, uint64_t *ret_start);

/* Records are sorted by seq and by ts: find the offset of the first record for which pred is
 * true (pred must be false then true along the stream), or files->total when none is. Cost:
 * logarithmic probes, then at most one block of scanning. Unparsable lines count as false. */
typedef bool (*logd_record_pred_fn)(const logd_entry_t *e, void *userdata);
int logd_files_seek(const logd_files_t *f, logd_record_pred_fn pred, void *userdata, uint64_t *ret);

/* ---- one instance's store (logd_store.c) -------------------------------------------------------- */

typedef struct logd_store {
        char *dir;          /* <logd.dir>/deployments/<deployment>/<instance> */
        int fd;             /* live file, O_APPEND; -1 when closed */
        uint64_t size;      /* of the live file, pending bytes excluded */
        uint64_t max_bytes; /* rotate before the live file would exceed it; 0: never */
        unsigned backups;
        uint64_t last_seq; /* of the newest record; 0 when there is none */
        uint64_t last_ts;
        char *wbuf; /* records not yet written */
        size_t wlen, wcap;
} logd_store_t;

/* Create or reopen dir. A torn record at the end of the live file (a crash mid-write) is cut
 * off; last_seq/last_ts are those of the newest complete record. */
int logd_store_open(logd_store_t *s, const char *dir, uint64_t max_bytes, unsigned backups);
void logd_store_close(logd_store_t *s);
/* Queue one record; rotates first when it would not fit in the live file. */
int logd_store_append(logd_store_t *s, const logd_entry_t *e);
int logd_store_flush(logd_store_t *s);
/* Flush and fdatasync: what the capture file may lose after this is in the store for good. */
int logd_store_sync(logd_store_t *s);
int logd_store_rotate(logd_store_t *s);
/* Nothing more will be appended (the instance finished): sync, and give back the fd. */
void logd_store_seal(logd_store_t *s);
/* Disk blocks of the store's files, in bytes. */
uint64_t logd_store_disk_usage(const logd_store_t *s);

/* ---- the daemon ------------------------------------------------------------------------------- */

typedef struct logd logd_t;
typedef struct logd_instance logd_instance_t;

struct logd_instance {
        logd_t *logd;
        char id[13];
        char *deployment_id; /* NULL until instance.json told us */
        char *runtime;       /* as instance.json names it ("" if it does not): picks the rotation settings */
        char *console;       /* the capture file's name in src_dir (instance.json); NULL: the default */
        bool store_open;
        logd_store_t store;
        /* capture */
        char *src_dir;     /* <instances_dir>/<id> */
        int dir_wd;        /* inotify watch of src_dir; -1 when none */
        int src_fd;        /* the capture file, read-write for hole punching; -1 when none */
        bool spooled;      /* spool/<id>.console links the capture file: it outlives src_dir */
        bool punch_failed; /* the filesystem cannot punch holes: said once */
        logd_splitter_t split;
        uint64_t punched;       /* capture-file bytes before this are holes */
        uint64_t pending_since; /* monotonic ms since a partial line waits; 0 when none */
        int pump_timer;         /* more to read, continued on the next loop turn; 0 when none */
        uint64_t finished_at;   /* unix ms; 0 while the VMM may still write */
        /* the log.<deployment> event being built while pumping */
        msgpack_sbuffer ev;
        msgpack_packer evpk;
        size_t ev_n;
        uint64_t ev_start;
        uint64_t ev_now; /* capture time of the chunk being split */
        char *clean;     /* LOGD_CLEAN_SIZE(LOGD_LINE_MAX) bytes */
        char *rbuf;      /* read buffer */
};

struct logd {
        husk_daemon_ctx_t *ctx;
        zloop_t *loop;
        char *dir;           /* logd.dir */
        char *instances_dir; /* vmm_driver.instances_dir: where the VMMs write */
        zhashx_t *instances; /* id -> logd_instance_t* (owned) */
        zhashx_t *by_wd;     /* "wd" -> logd_instance_t* (not owned) */
        int inotify_fd;
        int root_wd;
        bool state_dirty;
        bus_pub_t *pub;
        bus_server_t *server;
        bus_sub_t *events;       /* apiserver: deployment.purged */
        bus_client_t *apiserver; /* deployment.list, answered on the loop (never waited for) */
        bool listing;            /* a deployment.list is in flight */
        char **list_snapshot;    /* deployments we had logs of when we asked (NULL-terminated) */
        int tick_timer;
        int scan_timer;
        int purge_check_timer;
        uint64_t lines_stored; /* since start, every instance: daemon.stats's logd_lines_stored_total */
        uint64_t bytes_stored; /* their messages' bytes */
};

static inline const husk_config_t *logd_config(const logd_t *d) { return d->ctx->config; }

int logd_new(husk_daemon_ctx_t *ctx, logd_t **ret);
void logd_free(logd_t *d);
static inline void logd_freep(logd_t **d) {
        if (*d)
                logd_free(*d);
        *d = NULL;
}
/* SIGHUP: new rotation settings apply to every store; logd.dir and instances_dir cannot move. */
int logd_reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh);

/* Rotation settings for an instance's runtime. */
void logd_rotation(const husk_config_t *c, const char *runtime, uint64_t *ret_max_bytes, unsigned *ret_backups);

/* ---- instances (logd_instance.c) -------------------------------------------------------------- */

int logd_instance_new(logd_t *d, const char *id, logd_instance_t **ret);
/* Stops capturing (closing everything) and frees; the store stays on disk. */
void logd_instance_free(logd_instance_t *i);
/* Learn the deployment (and runtime, NULL if not known) and open the store. */
int logd_instance_bind(logd_instance_t *i, const char *deployment_id, const char *runtime);
/* The capture file's name, as instance.json gives it; it is kept while capturing. */
int logd_instance_set_console(logd_instance_t *i, const char *name);
static inline const char *logd_instance_console(const logd_instance_t *i) {
        return i->console ?: INSTANCE_CONSOLE_LOG_DEFAULT;
}
/* Attach the capture file: link it into the spool, open it, read what is there. */
int logd_instance_attach(logd_instance_t *i, const char *path);
/* Read what the VMM wrote since last time (a bounded amount; the rest on the next loop turn). */
void logd_instance_pump(logd_instance_t *i);
/* The VMM is gone: read to the end, store the partial line, close and unlink the capture. */
void logd_instance_finish(logd_instance_t *i);
/* Store a partial line that waited long enough. */
void logd_instance_flush_partial(logd_instance_t *i, uint64_t now_mono);
char *logd_instance_spool_path(const logd_instance_t *i);

/* ---- discovery (logd_watch.c) ------------------------------------------------------------------ */

int logd_watch_open(logd_t *d);
void logd_watch_close(logd_t *d);
/* Look at every instance directory (start, inotify overflow, the safety-net tick). */
void logd_watch_scan(logd_t *d);
/* Watch one instance directory and read its record and capture file. */
int logd_watch_instance(logd_t *d, logd_instance_t *i);
void logd_watch_forget(logd_t *d, logd_instance_t *i);

/* ---- state file (logd_state.c) ----------------------------------------------------------------- */

#define LOGD_STATE_FILE "state.json"
#define LOGD_STATE_MAX (16u * 1024u * 1024u)

/* Load LOGD_STATE_FILE into d->instances (stores opened). A missing file is an empty state. */
int logd_state_load(logd_t *d);
int logd_state_save(logd_t *d);
/* Save now if something changed since the last save. */
void logd_state_save_if_dirty(logd_t *d);
/* Store directories the state file did not know (it was lost): adopt them as finished. */
int logd_state_adopt_stores(logd_t *d);

/* ---- retention and purge (logd_retention.c) ----------------------------------------------------- */

/* Keep the newest logd.retained_instances finished instances of a deployment; drop the rest. */
void logd_retain(logd_t *d, const char *deployment_id);
void logd_retain_all(logd_t *d);
/* Everything of a deployment goes: captures stop, stores are removed, followers told. */
void logd_purge(logd_t *d, const char *deployment_id);
/* Forget an instance entirely: capture, spool link and store. */
void logd_instance_drop(logd_instance_t *i);

/* ---- queries (logd_query.c) -------------------------------------------------------------------- */

#define LOGD_QUERY_LIMIT_MAX 5000                   /* entries per page */
#define LOGD_QUERY_PAGE_BYTES (1024u * 1024u)       /* message bytes per page */
#define LOGD_QUERY_SCAN_BYTES (32u * 1024u * 1024u) /* store bytes read per page */
#define LOGD_QUERY_TAIL_MAX 100000
#define LOGD_QUERY_INSTANCES_MAX 512
#define LOGD_QUERY_CURSORS_MAX 1024

typedef struct logd_cursor {
        char instance[13];
        uint64_t after; /* entries with seq > after */
} logd_cursor_t;

typedef struct logd_query {
        const char *deployment_id;
        const char *instance; /* NULL: all */
        uint64_t tail;        /* with has_tail: the last this many entries (0: none, only what comes) */
        bool has_tail;
        uint64_t since_ms;          /* 0: from the beginning */
        logd_level_t level;         /* keep entries at this level or more severe */
        const logd_cursor_t *after; /* continue a previous page; tail is ignored then */
        size_t n_after;
        bool has_after;
        size_t limit; /* entries per page */
} logd_query_t;

/* The stores one query reads: name and directory of each instance. */
typedef struct logd_query_source {
        const char *instance;
        const char *dir;
        unsigned backups;
} logd_query_source_t;

/* Run q over sources and pack {entries, cursor, more} into pk. Pure over the files. */
int logd_query_run(const logd_query_t *q, const logd_query_source_t *sources, size_t n_sources, msgpack_packer *pk);
void logd_entry_pack(msgpack_packer *pk, const char *instance, const logd_entry_t *e);

/* ---- bus (logd_bus.c) -------------------------------------------------------------------------- */

extern const bus_method_t logd_bus_methods[];
int logd_bus_open(logd_t *d);
void logd_bus_close(logd_t *d);
/* Send the event batch i built while pumping, if any. */
void logd_publish_batch(logd_instance_t *i);
void logd_publish_purged(logd_t *d, const char *deployment_id);
/* Purge what belongs to deployments apiserver no longer has (they were purged while we were
 * down): asks apiserver for its list, and acts when (if) the answer comes. */
void logd_check_purged(logd_t *d);
