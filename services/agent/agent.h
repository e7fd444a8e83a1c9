/* agent.h: what husk-agent's files share: console logging, kernel cmdline, system setup,
 * module loading, the host channel, the protocol handlers and power-off. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include "lib/util.h"
#include "proto/agent_frame.h"

#define AGENT_VERSION "0.1.0"
#define AGENT_NAME "husk-agent " AGENT_VERSION

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
/* A hostname-safe instance id: 1..63 of [a-zA-Z0-9-], not starting with '-'. */
bool instance_id_valid(const char *id);

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
int modules_dep_lookup(const char *dep_text, const char *name, char **ret_path, char ***ret_deps,
                       size_t *ret_n);
/* "ext4.ko" and "/a/b/ext-4.ko.xz" -> "ext4" / "ext_4": the name modprobe compares. */
void module_name_from_path(const char *path, char *buf, size_t size);

/* ---- agent_channel.c: the virtio-serial port to the host -------------------------------- */

#define AGENT_OUT_MAX (4u * 1024u * 1024u) /* frames queued for a host that does not read */

typedef struct agent_channel {
        char path[256];              /* /dev/vportNpM */
        int fd;                      /* -1 while closed */
        bool host_connected;         /* false after EOF until SIGIO says the host is back */
        agent_frame_reader_t reader; /* input, resynced by reopening on malformed frames */
        msgpack_sbuffer out;         /* encoded frames not yet written */
        size_t out_off;              /* bytes of out already written */
} agent_channel_t;

/* Poll /sys/class/virtio-ports/<port>/name for name; writes /dev/<port> to path. */
int agent_channel_find(const char *name, uint64_t timeout_ms, char *path, size_t size);
void agent_channel_init(agent_channel_t *c);
int agent_channel_open(agent_channel_t *c, const char *path);
void agent_channel_close(agent_channel_t *c);
/* Close and reopen: drops buffered input so the next byte read starts a fresh stream. */
int agent_channel_reopen(agent_channel_t *c);
/* Queue one frame around a packed body; -ENOBUFS when the host has not read for too long. */
int agent_channel_queue(agent_channel_t *c, const msgpack_sbuffer *body);
static inline bool agent_channel_pending(const agent_channel_t *c) {
        return c->out.size > c->out_off;
}
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

/* ---- agent_proto.c: what each message type does ----------------------------------------- */

typedef struct agent_state {
        bool shutdown_requested; /* set by a shutdown request: the loop powers off */
        uint64_t shutdown_grace_ms;
} agent_state_t;

#define AGENT_SHUTDOWN_GRACE_MAX_MS (10u * 60u * 1000u)

/* Answer one request (a map with a string "type", as the frame reader guarantees) into
 * reply, a packed body; every request gets exactly one answer. Returns 0, or -ENOMEM. */
int agent_proto_handle(agent_state_t *s, const msgpack_object *req, msgpack_sbuffer *reply);
void agent_proto_ready(uint64_t boot_ms, msgpack_sbuffer *body);
/* id NULL: an error that answers no particular request. */
void agent_proto_error(const uint64_t *id, const char *code, const char *message,
                       msgpack_sbuffer *body);

/* ---- agent_loop.c: serve the channel, reap children ------------------------------------- */

/* Returns only when a shutdown was requested (0), or on a fatal error. */
int agent_loop_run(agent_channel_t *c, agent_state_t *s);
/* Reap every exited child; returns how many. */
int agent_reap_children(void);

/* ---- agent_power.c: the end of the VM --------------------------------------------------- */

/* SIGTERM everything, wait grace_ms, SIGKILL, sync, then power off; never returns. Where
 * the kernel cannot power off (no ACPI) it resets instead: QEMU runs with -no-reboot, so
 * either way the VM ends. */
_Noreturn void agent_power_off(uint64_t grace_ms);
