/* daemon.h: the life cycle every husk daemon shares.
 *
 * Parses the common command line (--config, --log-level, --help, --version), loads the
 * config, sets up logging, blocks SIGTERM/SIGINT/SIGHUP and delivers them through a
 * signalfd on the daemon's zloop: SIGTERM/SIGINT stop the loop gracefully (after telling
 * systemd STOPPING=1), SIGHUP calls the daemon's reload hook. daemon_ready() sends
 * READY=1 once the daemon serves requests.
 *
 * Reload and threads: SIGHUP loads the file into a fresh config, hands it to the reload hook
 * (on the loop thread, ctx->config still the old one), then frees the old config and makes the
 * fresh one ctx->config. So ctx->config may be read on the loop thread only, and no pointer
 * into it may be kept beyond the callback that took it: a thread of the daemon (civetweb
 * workers, probe threads, forwarder threads) gets copies of what it needs, made on the loop.
 * A hook that refuses (returns <0) keeps the old config whole, the log level included. */
#pragma once

#include <czmq.h>

#include "lib/config.h"

typedef struct husk_daemon_ctx husk_daemon_ctx_t;

typedef struct husk_daemon_desc {
        const char *name;    /* "vmm-driver" */
        const char *summary; /* one line for --help */
        /* Optional: SIGHUP. Receives the freshly loaded config; returns <0 to keep the old. */
        int (*reload)(husk_daemon_ctx_t *ctx, const husk_config_t *new_config);
} husk_daemon_desc_t;

struct husk_daemon_ctx {
        const husk_daemon_desc_t *desc;
        husk_config_t *config; /* owned; replaced (the old one freed) on reload: loop thread only */
        zloop_t *loop;
        void *userdata; /* the daemon's own state */
        const char *config_path;
        int signal_fd;
};

/* Returns 0 to continue, >0 when the process should exit 0 at once (--help/--version), <0
 * on error (already logged). */
int husk_daemon_init(husk_daemon_ctx_t *ctx, const husk_daemon_desc_t *desc, int argc, char **argv);
/* Tell systemd (if any) we are ready and log it. */
void husk_daemon_ready(husk_daemon_ctx_t *ctx);
/* Runs the loop until a stop signal. Returns 0 on graceful stop. */
int husk_daemon_run(husk_daemon_ctx_t *ctx);
void husk_daemon_done(husk_daemon_ctx_t *ctx);

/* A child about to exec gets its signals back with lib/child.h. */
