/* cli_deployment_metrics.c: `husk deployment metrics ID|NAME [--watch]`: each instance's CPU, memory, network and disk, summed (GET .../metrics). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_deployment.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

#define WATCH_DEFAULT_S 2

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) { interrupted = 1; }

static void metrics_help(void) {
        printf("Usage: husk deployment metrics ID|NAME [OPTIONS]\n"
               "\n"
               "Show what each instance of a deployment uses, and the sums: CPU (%% of one host CPU over\n"
               "the sampler's last interval, and seconds), the VMM's resident memory against the guest's\n"
               "size, network traffic as the guest sees it, disk I/O, threads, and the guest's own view\n"
               "of its memory where husk-agent runs. vmm-driver samples every vmm_driver.metrics_interval\n"
               "(5 s by default); this reads the latest samples and never waits for one.\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      look NAME up in namespace NS\n"
               "  -w, --watch[=SECONDS]   redraw every SECONDS (default %d) until interrupted\n"
               "  -o, --output FORMAT     table (default) or json (one object per line with --watch)\n"
               "  -h, --help              show this help\n",
               WATCH_DEFAULT_S);
}

static const char *bytes(double b, char *buf, size_t size) {
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        size_t u = 0;

        while (b >= 1024 && u + 1 < ELEMENTSOF(units)) {
                b /= 1024;
                u++;
        }
        snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", b, units[u]);
        return buf;
}

static double num(const json_t *o, const char *k1, const char *k2) {
        const json_t *v = json_object_get(o, k1);

        if (k2)
                v = json_object_get(v, k2);
        return json_number_value(v);
}

/* One row: an instance, or the deployment's totals (prefix "total_"). */
static int add_row(cli_table_t *t, const char *name, const json_t *o, bool total) {
        char cpu[32], secs[32], mem[64], rss[24], lim[24], rx[24], tx[24], net[64], rd[24], wr[24], disk[64], thr[16],
                guest[64], gu[24], gt[24];
        const json_t *g = total ? NULL : json_object_get(o, "guest");
        const char *p = total ? "total_" : "";
        char k[32];
        const char *cells[8];

        snprintf(k, sizeof(k), "%scpu_usage_percent", p);
        snprintf(cpu, sizeof(cpu), "%.1f%%", num(o, k, NULL));
        snprintf(k, sizeof(k), "%scpu_seconds", p);
        snprintf(secs, sizeof(secs), "%.1f s", num(o, k, NULL));
        snprintf(k, sizeof(k), "%smemory", p);
        snprintf(mem, sizeof(mem), "%s / %s", bytes(num(o, k, "usage_bytes"), rss, sizeof(rss)),
                 bytes(num(o, k, "limit_bytes"), lim, sizeof(lim)));
        snprintf(k, sizeof(k), "%snetwork", p);
        snprintf(net, sizeof(net), "%s / %s", bytes(num(o, k, "rx_bytes"), rx, sizeof(rx)),
                 bytes(num(o, k, "tx_bytes"), tx, sizeof(tx)));
        snprintf(k, sizeof(k), "%sdisk_io", p);
        snprintf(disk, sizeof(disk), "%s / %s", bytes(num(o, k, "read_bytes"), rd, sizeof(rd)),
                 bytes(num(o, k, "write_bytes"), wr, sizeof(wr)));
        snprintf(thr, sizeof(thr), "%.0f", total ? num(o, "total_pids", NULL) : num(o, "threads", NULL));
        if (g && json_is_object(g))
                snprintf(guest, sizeof(guest), "%s / %s", bytes(num(g, "memory_used_bytes", NULL), gu, sizeof(gu)),
                         bytes(num(g, "memory_total_bytes", NULL), gt, sizeof(gt)));
        else
                snprintf(guest, sizeof(guest), "-");
        cells[0] = name;
        cells[1] = cpu;
        cells[2] = secs;
        cells[3] = mem;
        cells[4] = net;
        cells[5] = disk;
        cells[6] = thr;
        cells[7] = guest;
        return cli_table_add_row(t, cells);
}

static int print_table(const json_t *m) {
        static const char *const headers[] = {
                "INSTANCE",    "CPU",        "CPU TIME", "MEMORY (RSS / GUEST)",
                "NET RX / TX", "DISK R / W", "THREADS",  "GUEST MEM",
        };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        const json_t *instances = json_object_get(m, "instances"), *i;
        size_t k;

        printf("%s (%s): %lld instance(s), %lld restart(s)\n", cli_json_str(m, "deployment_name", "?"),
               cli_json_str(m, "namespace", "?"), (long long)json_integer_value(json_object_get(m, "instance_count")),
               (long long)json_integer_value(json_object_get(m, "restart_count")));
        if (json_array_size(instances) == 0) {
                printf("no samples yet (no instance running, or none sampled yet)\n");
                return 0;
        }
        if (cli_table_new(ELEMENTSOF(headers), headers, &t) < 0)
                return -ENOMEM;
        json_array_foreach(instances, k, i) {
                if (add_row(t, cli_json_str(i, "instance_id", "?"), i, false) < 0)
                        return -ENOMEM;
        }
        if (json_array_size(instances) > 1 && add_row(t, "total", m, true) < 0)
                return -ENOMEM;
        cli_table_write(t, stdout);
        return 0;
}

int cli_deployment_metrics(struct cli_ctx *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "watch", optional_argument, NULL, 'w' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk deployment metrics";
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_free_ char *id = NULL, *path = NULL;
        const char *namespace_ = NULL, *output = "table", *ref;
        uint64_t every = 0;
        bool tty = isatty(STDOUT_FILENO);
        int c, r;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":n:w::o:h", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        namespace_ = optarg;
                        break;
                case 'w':
                        every = WATCH_DEFAULT_S;
                        if (optarg && (parse_u64(optarg, &every) < 0 || every == 0 || every > 3600))
                                return cli_usage_error(cmd, "--watch takes a number of seconds from 1 to 3600");
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        metrics_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        r = cli_deployment_args(cmd, argc, argv, output, "table", &ref);
        if (r != CLI_EXIT_OK)
                return r;
        r = cli_deployment_open(ctx, ref, namespace_, &h, &id);
        if (r != CLI_EXIT_OK)
                return r;
        if (cli_deployment_path(id, "metrics", NULL, &path) < 0)
                return CLI_EXIT_FAILURE;
        if (every)
                signal(SIGINT, on_sigint);
        do {
                _cleanup_(json_decrefp) json_t *m = NULL;

                r = cli_http_get_json(h, path, "cannot read the metrics", &m);
                if (r != CLI_EXIT_OK)
                        return r;
                if (!json_is_object(m)) {
                        cli_error("cannot read the metrics: husk-apiserver did not answer with an object");
                        return CLI_EXIT_FAILURE;
                }
                if (streq(output, "json")) {
                        /* One object per line when watching: a stream to pipe into jq. */
                        if (every) {
                                _cleanup_free_ char *line = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);

                                if (line)
                                        puts(line);
                        } else
                                cli_json_write(stdout, m);
                } else {
                        /* A refreshing table on a terminal; successive tables otherwise. */
                        if (every && tty)
                                fputs("\033[H\033[2J", stdout);
                        if (print_table(m) < 0)
                                return CLI_EXIT_FAILURE;
                }
                fflush(stdout);
                for (uint64_t waited = 0; every && !interrupted && waited < every * 10; waited++)
                        nanosleep(&(struct timespec){ .tv_nsec = 100000000L }, NULL);
        } while (every && !interrupted);
        return CLI_EXIT_OK;
}
