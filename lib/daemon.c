/* daemon.c: command line, config, logging, signals and sd_notify for every husk daemon. */
#include "lib/daemon.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>

#include "lib/bus.h"
#include "lib/log.h"

static void help(const husk_daemon_desc_t *d) {
        printf("husk-%s %s\n\n%s\n\n"
               "Options:\n"
               "  -c, --config PATH      config file (default $HUSK_CONFIG, else %s)\n"
               "  -l, --log-level LEVEL  error, warning, notice, info or debug (overrides the config)\n"
               "  -h, --help             show this help\n"
               "      --version          show the version\n\n"
               "Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the config.\n",
               d->name, HUSK_VERSION, d->summary, HUSK_DEFAULT_CONFIG);
}

/* The signals a daemon handles through its signalfd. */
static void handled_signals(sigset_t *set) {
        sigemptyset(set);
        sigaddset(set, SIGTERM);
        sigaddset(set, SIGINT);
        sigaddset(set, SIGHUP);
}

static void signals_mask(int how) {
        sigset_t set;

        handled_signals(&set);
        sigprocmask(how, &set, NULL);
}

/* log_format from the config, unless $HUSK_LOG_FORMAT says otherwise (a unit's Environment=
 * for one daemon). An unknown value in the environment is an error; the file's is checked when
 * it is read. */
static int apply_log_format(const husk_config_t *c) {
        const char *env = getenv("HUSK_LOG_FORMAT");
        int f = log_format_from_string(env && *env ? env : c->log_format);

        if (f < 0)
                return log_error_errno(EINVAL, "HUSK_LOG_FORMAT: '%s' is not text or json", env);
        log_set_format((log_format_t)f);
        return 0;
}

static int daemon_reload(husk_daemon_ctx_t *ctx) {
        husk_config_t *fresh = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        sd_notify(0, "RELOADING=1");
        r = husk_config_load(ctx->config_path, &fresh, &error);
        if (r < 0) {
                log_error("Reload failed, keeping the running config: %s", error ? error : strerror(-r));
                goto out;
        }
        if (ctx->desc->reload) {
                r = ctx->desc->reload(ctx, fresh);
                if (r < 0) {
                        log_error_errno(r, "Reload refused by husk-%s, keeping the running config: %m",
                                        ctx->desc->name);
                        husk_config_free(fresh);
                        goto out;
                }
        }
        /* Nothing may point into the old config any more (see daemon.h): threads hold copies. */
        husk_config_free(ctx->config);
        ctx->config = fresh;
        log_set_max_level(fresh->log_level);
        apply_log_format(fresh);
        log_info("Reloaded %s", ctx->config_path);
out:
        sd_notify(0, "READY=1");
        return 0;
}

static int on_signal(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        husk_daemon_ctx_t *ctx = arg;
        struct signalfd_siginfo si;

        while (read(ctx->signal_fd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                        daemon_reload(ctx);
                        continue;
                }
                log_info("Received %s, stopping", strsignal((int)si.ssi_signo));
                sd_notify(0, "STOPPING=1");
                return -1; /* ends zloop_start() */
        }
        return 0;
}

int husk_daemon_init(husk_daemon_ctx_t *ctx, const husk_daemon_desc_t *desc, int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "log-level", required_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        static char ident[64];
        const char *config_arg = NULL, *level_arg = NULL;
        _cleanup_free_ char *error = NULL;
        zmq_pollitem_t item = { .events = ZMQ_POLLIN };
        int c, r;

        memset(ctx, 0, sizeof(*ctx));
        ctx->desc = desc;
        ctx->signal_fd = -1;
        snprintf(ident, sizeof(ident), "husk-%s", desc->name);
        log_set_ident(ident);
        bus_identity_set(desc->name);

        while ((c = getopt_long(argc, argv, "c:l:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config_arg = optarg;
                        break;
                case 'l':
                        level_arg = optarg;
                        break;
                case 'h':
                        help(desc);
                        return 1;
                case 'V':
                        printf("husk-%s %s\n", desc->name, HUSK_VERSION);
                        return 1;
                default:
                        return log_error_errno(EINVAL, "Try 'husk-%s --help'.", desc->name);
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument '%s'. Try 'husk-%s --help'.", argv[optind],
                                       desc->name);

        ctx->config_path = husk_config_path(config_arg);
        r = husk_config_load(ctx->config_path, &ctx->config, &error);
        if (r < 0)
                return log_error_errno(r, "%s", error ? error : strerror(-r));
        log_set_max_level(ctx->config->log_level);
        r = apply_log_format(ctx->config);
        if (r < 0)
                return r;
        if (level_arg) {
                r = log_level_from_string(level_arg);
                if (r < 0)
                        return log_error_errno(EINVAL, "--log-level: unknown level '%s'", level_arg);
                log_set_max_level(r);
        }

        /* czmq would install its own SIGINT/SIGTERM handlers; signals are ours, via signalfd. */
        zsys_handler_set(NULL);
        signals_mask(SIG_BLOCK);
        {
                sigset_t set;
                handled_signals(&set);
                ctx->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        }
        if (ctx->signal_fd < 0)
                return log_error_errno(errno, "Failed to create signalfd: %m");

        ctx->loop = zloop_new();
        if (!ctx->loop)
                return log_error_errno(ENOMEM, "Failed to create the event loop");
        item.fd = ctx->signal_fd;
        if (zloop_poller(ctx->loop, &item, on_signal, ctx) < 0)
                return log_error_errno(ENOMEM, "Failed to watch signals");
        return 0;
}

void husk_daemon_ready(husk_daemon_ctx_t *ctx) {
        sd_notifyf(0, "READY=1\nSTATUS=serving\nMAINPID=%d", (int)getpid());
        log_info("husk-%s ready (config %s)", ctx->desc->name, ctx->config_path);
}

int husk_daemon_run(husk_daemon_ctx_t *ctx) {
        zloop_start(ctx->loop);
        return 0;
}

void husk_daemon_done(husk_daemon_ctx_t *ctx) {
        zloop_destroy(&ctx->loop);
        if (ctx->signal_fd >= 0)
                close(ctx->signal_fd);
        ctx->signal_fd = -1;
        husk_config_freep(&ctx->config);
}
