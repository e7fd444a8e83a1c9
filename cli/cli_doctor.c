/* cli_doctor.c: `husk doctor`: the host's checks (cli_doctor_host.c), then each daemon on the bus, what vmm-driver found, and the API; one line each, the fix under a failure. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_doctor.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"
#include "cli/cli_tap_bus.h"
#include "lib/mp.h"

#define DOCTOR_BUS_TIMEOUT_MS 1000

static const char *const status_names[] = { [DOCTOR_OK] = "ok", [DOCTOR_WARN] = "warn", [DOCTOR_FAIL] = "fail" };

void doctor_add(doctor_t *d, const char *check, doctor_status_t status, const char *fix, const char *fmt, ...) {
        _cleanup_free_ char *message = NULL;
        json_t *row;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&message, fmt, ap) < 0)
                message = NULL;
        va_end(ap);
        row = json_pack("{s:s, s:s, s:s}", "check", check, "status", status_names[status], "message",
                        message ?: "out of memory");
        if (row && fix && status != DOCTOR_OK)
                json_object_set_new(row, "fix", json_string(fix));
        json_array_append_new(d->checks, row);
        if (status == DOCTOR_FAIL)
                d->failed = true;
}

char *doctor_fix(const char *fmt, ...) {
        char *s = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        return s;
}

/* ---- the bus ---------------------------------------------------------------------------------- */

typedef struct doctor_call {
        const cli_tap_bus_t *bus;
        const char *endpoint;
        const char *method;
        pthread_t thread;
        bool started;
        int result;
        bus_reply_t *reply;
} doctor_call_t;

static void *call_run(void *arg) {
        static const bus_call_opts_t opts = { .timeout_ms = DOCTOR_BUS_TIMEOUT_MS, .idempotent = true };
        doctor_call_t *c = arg;
        bus_client_t *client = NULL;

        c->result = c->bus->client_new(c->endpoint, &client);
        if (c->result >= 0)
                c->result = c->bus->call(client, c->method, NULL, &opts, &c->reply);
        c->bus->client_destroy(&client);
        return NULL;
}

/* Why a call has no usable answer, NULL when it has one. */
static const char *call_problem(const doctor_call_t *c, msgpack_object_type want, char *buf, size_t size) {
        if (c->result == -ETIMEDOUT && strncmp(c->endpoint, "ipc://", 6) == 0 && access(c->endpoint + 6, F_OK) < 0)
                snprintf(buf, size, "is not running: %s does not exist", c->endpoint + 6);
        else if (c->result == -ETIMEDOUT)
                snprintf(buf, size, "does not answer on %s within %d ms", c->endpoint, DOCTOR_BUS_TIMEOUT_MS);
        else if (c->result < 0)
                snprintf(buf, size, "cannot be asked on %s: %s", c->endpoint, strerror(-c->result));
        else if (c->reply->error_code)
                snprintf(buf, size, "answered %s: %s", c->reply->error_code, c->reply->error_message ?: "");
        else if (!c->reply->result || c->reply->result->type != want)
                snprintf(buf, size, "answered something unexpected");
        else
                return NULL;
        return buf;
}

static void check_daemon(doctor_t *d, husk_daemon_t which, const doctor_call_t *c) {
        const char *name = husk_daemon_name(which);
        _cleanup_free_ char *version = NULL, *fix = NULL;
        char why[512], check[64], uptime[32];
        uint64_t pid = 0, started = 0;
        const char *problem = call_problem(c, MSGPACK_OBJECT_MAP, why, sizeof(why));

        snprintf(check, sizeof(check), "husk-%s", name);
        if (!problem && (mp_get_str(c->reply->result, "version", 64, &version) < 0 ||
                         mp_get_u64(c->reply->result, "pid", &pid) < 0 ||
                         mp_get_u64(c->reply->result, "started_at_ns", &started) < 0))
                problem = "answered daemon.info without its fields";
        if (problem) {
                fix = doctor_fix("systemctl start husk-%s  # journalctl -u husk-%s tells why it stopped", name, name);
                doctor_add(d, check, DOCTOR_FAIL, fix, "%s", problem);
                return;
        }
        cli_format_age(now_realtime_ms(), started / 1000000, uptime, sizeof(uptime));
        if (!streq(version, HUSK_VERSION)) {
                fix = doctor_fix("systemctl restart husk-%s", name);
                doctor_add(d, check, DOCTOR_WARN, fix, "runs version %s, this husk is %s (pid %llu, up %s)", version,
                           HUSK_VERSION, (unsigned long long)pid, uptime);
                return;
        }
        doctor_add(d, check, DOCTOR_OK, NULL, "%s, pid %llu, up %s", version, (unsigned long long)pid, uptime);
}

/* What vmm-driver found for each enabled runtime: its PATH and config are the ones that count. */
static void check_runtimes(doctor_t *d, const doctor_call_t *c) {
        const msgpack_object *rows;
        char why[512];
        const char *problem = call_problem(c, MSGPACK_OBJECT_ARRAY, why, sizeof(why));

        if (problem)
                return; /* husk-vmm-driver's own line says it */
        rows = c->reply->result;
        for (uint32_t k = 0; k < rows->via.array.size; k++) {
                const msgpack_object *row = &rows->via.array.ptr[k];
                _cleanup_free_ char *name = NULL, *binary = NULL, *version = NULL, *accel = NULL, *why_not = NULL,
                                    *fix = NULL;
                char check[96];
                bool enabled = false;

                if (mp_get_str(row, "name", 64, &name) < 0 || mp_get_bool(row, "enabled", &enabled) < 0 || !enabled)
                        continue;
                (void)mp_get_str(row, "binary", 4096, &binary);
                (void)mp_get_str(row, "version", 1024, &version);
                (void)mp_get_str(row, "accel", 32, &accel);
                (void)mp_get_str(row, "problem", 1024, &why_not);
                snprintf(check, sizeof(check), "vmm-driver %s", name);
                if (why_not) {
                        fix = doctor_fix("systemctl reload husk-vmm-driver  # once the line for %s above is ok", name);
                        doctor_add(d, check, DOCTOR_FAIL, fix, "vmm-driver cannot run %s: %s", name, why_not);
                } else
                        doctor_add(d, check, DOCTOR_OK, NULL, "%s (%s)%s%s", binary ?: "?",
                                   version ?: "version unknown", accel ? ", accel " : "", accel ?: "");
        }
}

static void check_api(doctor_t *d, const cli_ctx_t *ctx) {
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_free_ char *error = NULL;
        cli_response_t resp = {};
        int r;

        r = cli_http_new(ctx->host, &h);
        if (r < 0) {
                doctor_add(d, "api", DOCTOR_FAIL, "husk --host http://HOST:PORT doctor", "--host %s: %s", ctx->host,
                           strerror(-r));
                return;
        }
        r = cli_http_request(h, "GET", "/healthz", NULL, &resp, &error);
        if (r < 0)
                doctor_add(d, "api", DOCTOR_FAIL, "systemctl start husk-apiserver  # or point --host at it",
                           "%s does not answer: %s", cli_http_base(h), error ?: strerror(-r));
        else if (resp.status != 200)
                doctor_add(d, "api", DOCTOR_FAIL, "journalctl -u husk-apiserver", "%s/healthz answered %ld",
                           cli_http_base(h), resp.status);
        else
                doctor_add(d, "api", DOCTOR_OK, NULL, "%s answers", cli_http_base(h));
        cli_response_clear(&resp);
}

void doctor_check_daemons(doctor_t *d, const cli_ctx_t *ctx, const husk_config_t *c) {
        enum { CALL_RUNTIMES = _HUSK_DAEMON_MAX, N_CALLS };
        _cleanup_free_ char *error = NULL;
        doctor_call_t calls[N_CALLS] = {};
        cli_tap_bus_t bus;

        if (cli_tap_bus_load(&bus, &error) < 0) {
                doctor_add(d, "bus", DOCTOR_FAIL, "make install  # husk-bus.so belongs in PREFIX/lib/husk",
                           "cannot load the bus client: %s", error);
        } else {
                /* czmq sets itself up on its first socket, and must not do so in several threads at once. */
                void *(*zsys_init)(void) = (void *(*)(void))dlsym(bus.dl, "zsys_init");

                if (zsys_init)
                        zsys_init();
                for (size_t k = 0; k < N_CALLS; k++) {
                        husk_daemon_t which = k < _HUSK_DAEMON_MAX ? (husk_daemon_t)k : HUSK_DAEMON_VMM_DRIVER;

                        calls[k] = (doctor_call_t){ .bus = &bus,
                                                    .endpoint = c->bus[which].requests,
                                                    .method = k < _HUSK_DAEMON_MAX ? BUS_METHOD_DAEMON_INFO
                                                                                   : BUS_METHOD_RUNTIME_LIST,
                                                    .result = -ENOMEM };
                        calls[k].started = pthread_create(&calls[k].thread, NULL, call_run, &calls[k]) == 0;
                        if (!calls[k].started)
                                call_run(&calls[k]);
                }
                for (size_t k = 0; k < N_CALLS; k++)
                        if (calls[k].started)
                                pthread_join(calls[k].thread, NULL);
                for (size_t k = 0; k < _HUSK_DAEMON_MAX; k++)
                        check_daemon(d, (husk_daemon_t)k, &calls[k]);
                check_runtimes(d, &calls[CALL_RUNTIMES]);
                for (size_t k = 0; k < N_CALLS; k++)
                        if (calls[k].reply)
                                bus.reply_free(calls[k].reply);
                cli_tap_bus_unload(&bus);
        }
        check_api(d, ctx);
}

/* ---- the verb --------------------------------------------------------------------------------- */

static void doctor_help(void) {
        printf("Usage: husk doctor [-o table|json]\n"
               "\n"
               "Checks that this host can run husk: one line per check, ok, warn or fail, and under\n"
               "each failure the command that fixes it. Exits 1 when something required fails\n"
               "(warnings do not).\n"
               "\n"
               "Where each check runs:\n"
               "  here, from the config file (--config, $HUSK_CONFIG, else " HUSK_DEFAULT_CONFIG "):\n"
               "    the VMM binaries and their versions, /dev/kvm (usable, and fast: a bounded KVM_RUN\n"
               "    loop under 1/3 s; a slow one recommends accel: tcg), OVMF, cloud-hypervisor and its\n"
               "    firmware when enabled, the kit, virtiofsd, nftables, the permissions of the state,\n"
               "    runtime, instance and log directories and secret files, free disk under the state dir\n"
               "  on the bus (the config's endpoints): each daemon answers daemon.info (version, pid,\n"
               "    uptime), and vmm-driver's runtime.list (what it found with its own PATH and config)\n"
               "  over HTTP: the API (--host) answers GET /healthz\n"
               "Run it as the user the daemons run as (root) to see what they see.\n"
               "\n"
               "Options:\n"
               "  -o, --output FORMAT     table (default) or json\n");
}

static void write_table(const doctor_t *d) {
        size_t width = 0, i;
        const json_t *row;
        unsigned counts[3] = {};

        json_array_foreach(d->checks, i, row) {
                size_t n = strlen(cli_json_str(row, "check", ""));
                width = n > width ? n : width;
        }
        json_array_foreach(d->checks, i, row) {
                const char *status = cli_json_str(row, "status", "");
                const char *fix = cli_json_str(row, "fix", NULL);

                counts[streq(status, "ok") ? 0 : streq(status, "warn") ? 1 : 2]++;
                printf("%-4s  %-*s  %s\n", status, (int)width, cli_json_str(row, "check", ""),
                       cli_json_str(row, "message", ""));
                if (fix)
                        printf("%-4s  %-*s  fix: %s\n", "", (int)width, "", fix);
        }
        printf("\n%u ok, %u warning%s, %u failure%s\n", counts[0], counts[1], counts[1] == 1 ? "" : "s", counts[2],
               counts[2] == 1 ? "" : "s");
}

int verb_doctor(cli_ctx_t *ctx, int argc, char **argv) {
        _cleanup_(husk_config_freep) husk_config_t *config = NULL;
        _cleanup_free_ char *error = NULL;
        const char *output = "table", *path;
        doctor_t d = {};
        int r;

        for (int k = 1; k < argc; k++) {
                if ((streq(argv[k], "-o") || streq(argv[k], "--output")) && k + 1 < argc)
                        output = argv[++k];
                else if (streq(argv[k], "-h") || streq(argv[k], "--help")) {
                        doctor_help();
                        return CLI_EXIT_OK;
                } else
                        return cli_usage_error("husk doctor", "unknown argument %s", argv[k]);
        }
        if (!streq(output, "table") && !streq(output, "json"))
                return cli_usage_error("husk doctor", "-o: table or json");

        d.checks = json_array();
        if (!d.checks)
                return CLI_EXIT_FAILURE;
        path = husk_config_path(ctx->config_path);
        r = husk_config_load(path, &config, &error);
        if (r < 0) {
                _cleanup_free_ char *fix = NULL;

                fix = doctor_fix("edit %s  # or point --config / $HUSK_CONFIG at the right file", path);
                doctor_add(&d, "config", DOCTOR_FAIL, fix, "%s", error ?: strerror(-r));
        } else if (!config->path && !(config->path = strdup(path))) {
                return CLI_EXIT_FAILURE;
        } else {
                doctor_add(&d, "config", DOCTOR_OK, NULL, "%s%s", path,
                           access(path, F_OK) < 0 ? " does not exist: the defaults apply" : "");
                doctor_check_host(&d, config);
                doctor_check_daemons(&d, ctx, config);
        }
        if (streq(output, "json")) {
                json_auto_t *answer = json_pack("{s:b, s:O}", "ok", !d.failed, "checks", d.checks);

                if (answer)
                        cli_json_write(stdout, answer);
        } else
                write_table(&d);
        json_decref(d.checks);
        return d.failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}
