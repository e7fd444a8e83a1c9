/* main.c: `husk-oci`, the runc-compatible OCI runtime that runs each container in a microVM: global options, then one verb from the table. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/oci/oci.h"
#include "lib/config.h"

static const oci_verb_t verbs[] = {
        { "create", oci_verb_create, "create a container: boot its VM, ready to start" },
        { "delete", oci_verb_delete, "delete a container and everything it holds" },
        { "exec", oci_verb_exec, "run a new process in a running container" },
        { "features", oci_verb_features, "show what this runtime supports (JSON)" },
        { "kill", oci_verb_kill, "send a signal to the container's process" },
        { "list", oci_verb_list, "list the containers under --root" },
        { "pause", oci_verb_pause, "pause the container's VM" },
        { "ps", oci_verb_ps, "show the container's processes" },
        { "resume", oci_verb_resume, "resume a paused container" },
        { "run", oci_verb_run, "create and start a container" },
        { "spec", oci_verb_spec, "write a new config.json (runc's default)" },
        { "start", oci_verb_start, "run the user process of a created container" },
        { "state", oci_verb_state, "show a container's state (JSON)" },
        { "update", oci_verb_update, "update a container's resources (what a VM can honour)" },
};

static void help(void) {
        printf("Usage: husk-oci [GLOBAL OPTIONS] COMMAND [ARGS]\n"
               "\n"
               "An OCI runtime with runc's command line that runs each container in a microVM.\n"
               "\n"
               "Commands:\n");
        for (size_t k = 0; k < ELEMENTSOF(verbs); k++)
                printf("  %-10s %s\n", verbs[k].name, verbs[k].help);
        printf("\n"
               "Global options (before the command):\n"
               "  --root DIR            state directory, one per container (default " OCI_DEFAULT_ROOT ")\n"
               "  --log FILE            write errors there as log lines (the shim reads the last)\n"
               "  --log-format FORMAT   text or json (default text)\n"
               "  --debug               also log debug lines\n"
               "  --config PATH         husk's config file: kit paths, runtime.qemu (default: $HUSK_CONFIG,\n"
               "                        else " HUSK_DEFAULT_CONFIG ")\n"
               "  --kernel PATH         the guest kernel (default: the config's kit.kernel)\n"
               "  --initrd PATH         the guest initramfs with husk-agent (default: the config's kit.initrd)\n"
               "  --qemu PATH           QEMU (default: the config's runtime.qemu.binary_path)\n"
               "  --accel kvm|tcg|auto  QEMU's accelerator (default: the config's runtime.qemu.accel)\n"
               "  --cpus N              vCPUs of a VM whose spec sets no CPU quota (default %u)\n"
               "  --memory MIB          RAM of a VM whose spec sets no memory limit (default %u)\n"
               "  --template DIR        start each VM as a clone of a template of its boot profile, kept\n"
               "                        in DIR (made there by the first container that needs it; runV's\n"
               "                        flag); without it every VM boots cold. Clones share the\n"
               "                        template's memory pages: see the README before using it\n"
               "  --systemd-cgroup, --rootless VALUE, --criu PATH   accepted and ignored (runc's)\n"
               "  -h, --help, -v, --version\n",
               OCI_DEFAULT_CPUS, OCI_DEFAULT_MEMORY_MIB);
}

enum {
        OPT_ROOT = 0x100,
        OPT_LOG,
        OPT_LOG_FORMAT,
        OPT_DEBUG,
        OPT_CONFIG,
        OPT_KERNEL,
        OPT_TEMPLATE,
        OPT_INITRD,
        OPT_QEMU,
        OPT_ACCEL,
        OPT_CPUS,
        OPT_MEMORY,
        OPT_IGNORED_FLAG,
        OPT_IGNORED_ARG,
};

static int parse_u32_opt(const char *name, const char *s, uint32_t min, uint32_t max, uint32_t *ret) {
        uint64_t n;

        if (parse_u64(s, &n) < 0 || n < min || n > max)
                return oci_fail("--%s: must be a number from %u to %u, not '%s'", name, min, max, s);
        *ret = (uint32_t)n;
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "root", required_argument, NULL, OPT_ROOT },
                { "log", required_argument, NULL, OPT_LOG },
                { "log-format", required_argument, NULL, OPT_LOG_FORMAT },
                { "debug", no_argument, NULL, OPT_DEBUG },
                { "config", required_argument, NULL, OPT_CONFIG },
                { "kernel", required_argument, NULL, OPT_KERNEL },
                { "initrd", required_argument, NULL, OPT_INITRD },
                { "qemu", required_argument, NULL, OPT_QEMU },
                { "accel", required_argument, NULL, OPT_ACCEL },
                { "cpus", required_argument, NULL, OPT_CPUS },
                { "memory", required_argument, NULL, OPT_MEMORY },
                { "template", required_argument, NULL, OPT_TEMPLATE },
                { "systemd-cgroup", no_argument, NULL, OPT_IGNORED_FLAG },
                { "rootless", required_argument, NULL, OPT_IGNORED_ARG },
                { "criu", required_argument, NULL, OPT_IGNORED_ARG },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'v' },
                {},
        };
        oci_ctx_t ctx = { .root = OCI_DEFAULT_ROOT,
                          .cpus = OCI_DEFAULT_CPUS,
                          .memory_mib = OCI_DEFAULT_MEMORY_MIB,
                          .argv0 = argv[0] };
        const char *log_format = "text";
        int c;

        /* A write to a closed pipe (the caller's stdout gone) is an error return, not a death. */
        signal(SIGPIPE, SIG_IGN);
        /* "+": stop at the verb, whose own options follow it. */
        while ((c = getopt_long(argc, argv, "+hv", options, NULL)) != -1) {
                switch (c) {
                case OPT_ROOT:
                        ctx.root = optarg;
                        break;
                case OPT_LOG:
                        ctx.log = optarg;
                        break;
                case OPT_LOG_FORMAT:
                        log_format = optarg;
                        break;
                case OPT_DEBUG:
                        ctx.debug = true;
                        break;
                case OPT_CONFIG:
                        ctx.config = optarg;
                        break;
                case OPT_KERNEL:
                        ctx.kernel = optarg;
                        break;
                case OPT_INITRD:
                        ctx.initrd = optarg;
                        break;
                case OPT_QEMU:
                        ctx.qemu = optarg;
                        break;
                case OPT_ACCEL:
                        ctx.accel = optarg;
                        break;
                case OPT_TEMPLATE:
                        if (optarg[0] != '/')
                                return oci_error("--template: %s: must be an absolute path", optarg);
                        ctx.template_dir = optarg;
                        break;
                case OPT_CPUS:
                        if (parse_u32_opt("cpus", optarg, 1, 64, &ctx.cpus) < 0)
                                return OCI_EXIT_FAILURE;
                        break;
                case OPT_MEMORY:
                        if (parse_u32_opt("memory", optarg, OCI_MEMORY_MIN_MIB, OCI_MEMORY_MAX_MIB, &ctx.memory_mib) <
                            0)
                                return OCI_EXIT_FAILURE;
                        break;
                case OPT_IGNORED_FLAG:
                case OPT_IGNORED_ARG:
                        break;
                case 'h':
                        help();
                        return OCI_EXIT_OK;
                case 'v':
                        printf("husk-oci version %s\nspec: %s\n", HUSK_VERSION, OCI_VERSION);
                        return OCI_EXIT_OK;
                default:
                        return OCI_EXIT_FAILURE;
                }
        }
        if (!streq(log_format, "text") && !streq(log_format, "json")) {
                oci_log_setup(&ctx);
                return oci_error("--log-format: must be text or json, not '%s'", log_format);
        }
        ctx.log_json = streq(log_format, "json");
        oci_log_setup(&ctx);
        if (optind >= argc) {
                help();
                return OCI_EXIT_FAILURE;
        }
        for (size_t k = 0; k < ELEMENTSOF(verbs); k++)
                if (streq(argv[optind], verbs[k].name)) {
                        /* The verb sees itself as argv[0]: its getopt starts at 1. */
                        optind++;
                        return verbs[k].run(&ctx, argc - optind + 1, argv + optind - 1);
                }
        return oci_error("unknown command '%s' (husk-oci --help lists them)", argv[optind]);
}
