/* cli_node.c: `husk node get`: the host (GET /node): kernel, CPUs, memory, disk, runtimes, VMs, templates, each daemon's version and uptime. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

static void node_help(void) {
        printf("Usage: husk node get [-o table|json]\n"
               "\n"
               "The host husk runs on, as husk-apiserver sees it (GET /node): hostname, kernel, CPUs,\n"
               "memory (total, available, admitted to VMs), the disk under the state dir, the runtimes\n"
               "vmm-driver has and their versions, the VMs running, the VM templates (size, age and\n"
               "paused clones ready in the warm pool), and each daemon's version and uptime (a daemon\n"
               "that does not answer is shown so).\n"
               "\n"
               "Options:\n"
               "  -o, --output FORMAT     table (default) or json\n");
}

/* "N B" of a member, "-" when absent. */
static const char *bytes_of(const json_t *obj, const char *key, char *buf, size_t size) {
        const json_t *v = json_object_get(obj, key);

        if (!json_is_integer(v)) {
                snprintf(buf, size, "-");
                return buf;
        }
        return cli_format_bytes((uint64_t)json_integer_value(v), buf, size);
}

static void write_runtimes(const json_t *node) {
        static const char *const headers[] = { "RUNTIME", "ENABLED", "BINARY", "VERSION", "ACCEL", "PROBLEM" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        const json_t *rt;
        size_t i;

        if (!json_is_array(json_object_get(node, "runtimes"))) {
                printf("Runtimes:   unknown (%s)\n", cli_json_str(node, "runtimes_error", "no answer"));
                return;
        }
        if (cli_table_new(ELEMENTSOF(headers), headers, &t) < 0)
                return;
        json_array_foreach(json_object_get(node, "runtimes"), i, rt) {
                const char *cells[] = {
                        cli_json_str(rt, "name", ""),    json_is_true(json_object_get(rt, "enabled")) ? "yes" : "no",
                        cli_json_str(rt, "binary", "-"), cli_json_str(rt, "version", "-"),
                        cli_json_str(rt, "accel", "-"),  cli_json_str(rt, "problem", "-")
                };
                if (cli_table_add_row(t, cells) < 0)
                        return;
        }
        printf("\n");
        cli_table_write(t, stdout);
}

static void write_templates(const json_t *node) {
        static const char *const headers[] = { "TEMPLATE", "SIZE", "AGE", "POOL" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        const json_t *tp, *list = json_object_get(node, "templates");
        size_t i;

        if (!json_is_array(list)) {
                printf("Templates:  unknown (%s)\n", cli_json_str(node, "templates_error", "no answer"));
                return;
        }
        if (json_array_size(list) == 0 || cli_table_new(ELEMENTSOF(headers), headers, &t) < 0)
                return;
        json_array_foreach(list, i, tp) {
                char size[32], age[32], pool[32];

                cli_format_bytes((uint64_t)json_integer_value(json_object_get(tp, "size_bytes")), size, sizeof(size));
                cli_format_age(now_realtime_ms(), (uint64_t)json_integer_value(json_object_get(tp, "made_at")), age,
                               sizeof(age));
                snprintf(pool, sizeof(pool), "%" JSON_INTEGER_FORMAT " ready",
                         json_integer_value(json_object_get(tp, "pool")));
                const char *cells[] = { cli_json_str(tp, "key", ""), size, age, pool };
                if (cli_table_add_row(t, cells) < 0)
                        return;
        }
        printf("\n");
        cli_table_write(t, stdout);
}

static void write_daemons(const json_t *node) {
        static const char *const headers[] = { "DAEMON", "STATUS", "VERSION", "PID", "UPTIME" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        const json_t *d;
        size_t i;

        if (cli_table_new(ELEMENTSOF(headers), headers, &t) < 0)
                return;
        json_array_foreach(json_object_get(node, "daemons"), i, d) {
                char pid[32] = "-", uptime[32] = "-", status[320];
                bool up = json_is_true(json_object_get(d, "reachable"));

                if (up) {
                        json_int_t s = json_integer_value(json_object_get(d, "uptime_seconds"));
                        snprintf(pid, sizeof(pid), "%" JSON_INTEGER_FORMAT,
                                 json_integer_value(json_object_get(d, "pid")));
                        cli_format_age((uint64_t)s * 1000, 0, uptime, sizeof(uptime));
                        snprintf(status, sizeof(status), "up");
                } else
                        snprintf(status, sizeof(status), "unreachable: %s", cli_json_str(d, "error", "?"));
                const char *cells[] = { cli_json_str(d, "name", ""), status, up ? cli_json_str(d, "version", "-") : "-",
                                        pid, uptime };
                if (cli_table_add_row(t, cells) < 0)
                        return;
        }
        printf("\n");
        cli_table_write(t, stdout);
}

static int node_get(cli_ctx_t *ctx, const char *output) {
        json_auto_t *node = NULL;
        const json_t *mem, *disk, *vms;
        char total[32], avail[32], admitted[32], dtotal[32], davail[32];
        int r;

        r = cli_http_call(ctx, "GET", "/node", NULL, 200, "cannot read the node", &node);
        if (r != CLI_EXIT_OK)
                return r;
        if (streq(output, "json")) {
                cli_json_write(stdout, node);
                return CLI_EXIT_OK;
        }
        mem = json_object_get(node, "memory");
        disk = json_object_get(node, "disk");
        vms = json_object_get(node, "vms_running");
        printf("Hostname:   %s\n"
               "Kernel:     %s (%s)\n"
               "CPUs:       %" JSON_INTEGER_FORMAT "\n"
               "Memory:     %s total, %s available, %s admitted to VMs\n"
               "Disk:       %s: %s total, %s available\n",
               cli_json_str(node, "hostname", "?"), cli_json_str(node, "kernel", "?"),
               cli_json_str(node, "architecture", "?"), json_integer_value(json_object_get(node, "cpus")),
               bytes_of(mem, "total_bytes", total, sizeof(total)),
               bytes_of(mem, "available_bytes", avail, sizeof(avail)),
               bytes_of(mem, "admitted_bytes", admitted, sizeof(admitted)), cli_json_str(disk, "path", "?"),
               bytes_of(disk, "total_bytes", dtotal, sizeof(dtotal)),
               bytes_of(disk, "available_bytes", davail, sizeof(davail)));
        if (json_is_integer(vms))
                printf("VMs:        %" JSON_INTEGER_FORMAT " running\n", json_integer_value(vms));
        else
                printf("VMs:        unknown (%s)\n", cli_json_str(node, "vms_error", "no answer"));
        write_runtimes(node);
        write_templates(node);
        write_daemons(node);
        return CLI_EXIT_OK;
}

/* What verb_node dispatches, for husk completion: it refuses any other COMMAND. */
static const cli_verb_t node_commands[] = {
        { "get", NULL, "show the host, its runtimes, VMs and daemons" },
};

const cli_verb_t *cli_node_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(node_commands);
        return node_commands;
}

int verb_node(cli_ctx_t *ctx, int argc, char **argv) {
        const char *output = "table";

        if (argc >= 2 && argv[1][0] != '-' && !cli_command_known(node_commands, ELEMENTSOF(node_commands), argv[1]))
                return cli_usage_error("husk node", "unknown command '%s'", argv[1]);
        if (argc >= 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                node_help();
                return CLI_EXIT_OK;
        }
        if (argc < 2 || !streq(argv[1], "get"))
                return cli_usage_error("husk node", "use: husk node get [-o table|json]");
        for (int k = 2; k < argc; k++) {
                if ((streq(argv[k], "-o") || streq(argv[k], "--output")) && k + 1 < argc)
                        output = argv[++k];
                else if (streq(argv[k], "-h") || streq(argv[k], "--help")) {
                        node_help();
                        return CLI_EXIT_OK;
                } else
                        return cli_usage_error("husk node", "unknown argument %s", argv[k]);
        }
        if (!streq(output, "table") && !streq(output, "json"))
                return cli_usage_error("husk node", "-o: table or json");
        return node_get(ctx, output);
}
