/* main.c: husk-agent, PID 1 of the guest kit: set up the VM, then serve the host channel. */
#include "services/agent/agent.h"

#include "lib/mp.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

/* How long the husk.agent port may take to appear once virtio_console is loaded. Under
 * TCG it takes a few ms; a missing port is a host misconfiguration, and waiting longer
 * only delays the VM's exit that reports it. */
#define PORT_TIMEOUT_MS 10000
/* As a daemon in a disk image: udev loads virtio_console in parallel with our start. */
#define DAEMON_PORT_TIMEOUT_MS 30000
/* How long the answer to shutdown may take to reach the host before we power off. */
#define SHUTDOWN_DRAIN_MS 2000
/* What the workload left running when it exited gets this long after SIGTERM. */
#define WORKLOAD_EXIT_GRACE_MS 1000

/* Loaded in this order whatever the devices: the transports that make virtio devices
 * visible, then the channel's driver. Everything else (virtio_blk, virtio_net, virtiofs,
 * vsock, virtio_pci) is loaded when its device is there, as udev's coldplug would: under
 * TCG each unneeded module costs ~5-30 ms of boot. File systems (ext4, overlay, isofs) are
 * loaded by the kernel itself on mount, through /sbin/modprobe (busybox). */
static const char *const required_modules[] = {
        "virtio_mmio",    /* microvm's transport; devices are found through ACPI */
        "virtio_console", /* the host channel */
};
static const char *const coldplug_buses[] = {
        "/sys/bus/pci/devices", /* q35/pc machines: virtio_pci, then its devices */
        "/sys/bus/virtio/devices",
};

static void help(void) {
        printf("%s [--help] [--version] [--vsock PORT]\n\n"
               "The husk guest agent. It runs as PID 1 (/init) of the husk guest kit: it mounts\n"
               "the kernel file systems, loads the virtio modules, sets the hostname from\n"
               "husk.instance=<id> on the kernel command line and serves the host on the\n"
               "virtio-serial port named \"%s\" (or on AF_VSOCK port %d with husk.transport=vsock)\n"
               "(see proto/SCHEMA.md, \"Agent\"). In kit mode it runs the deployment's workload.\n\n"
               "  --vsock PORT   run as a daemon in a disk image (systemd: husk-agent.service):\n"
               "                 serve the host on the virtio-serial port \"%s\" when the VM has a\n"
               "                 virtio console (the qemu runtime), else on AF_VSOCK PORT (husk uses %d)\n",
               program_invocation_short_name, AGENT_PORT_NAME, AGENT_VSOCK_PORT, AGENT_PORT_NAME, AGENT_VSOCK_PORT);
}

/* husk-agent --vsock PORT: a normal daemon in a disk image whose own init runs the workload.
 * No mounts, modules or power-off of its own making: shutdown asks the image's init. */
static int run_daemon(unsigned port) {
        static char *const poweroff[] = { "systemctl", "poweroff", NULL };
        _cleanup_(mp_strv_freep) char **env = NULL;
        agent_state_t state;
        agent_channel_t c;
        msgpack_sbuffer body;
        char path[256];
        sigset_t mask;
        pid_t pid;
        int r;

        agent_state_init(&state);
        state.no_workload = true;
        /* Not PID 1 here: a proc that closed its stdin must give EPIPE, not kill the agent. */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGIO);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        agent_channel_init(&c);
        /* The qemu runtime has no vhost-vsock here: it gives the VM the kit's virtio-serial port.
         * A virtio console device present means that port comes once udev loaded virtio_console. */
        if (agent_channel_device_present()) {
                r = agent_channel_find(AGENT_PORT_NAME, DAEMON_PORT_TIMEOUT_MS, path, sizeof(path));
                if (r >= 0)
                        r = agent_channel_open(&c, path);
                if (r >= 0)
                        log_agent_info("serving the host on %s (virtio-serial port %s)", path, AGENT_PORT_NAME);
                else
                        log_agent_warning_errno(r, "No usable virtio-serial port %s (%m), trying vsock",
                                                AGENT_PORT_NAME);
        }
        if (c.fd < 0) {
                r = agent_vsock_listen(&c, port);
                if (r < 0) {
                        log_agent_error_errno(
                                r, "Failed to listen on vsock port %u: %m (is the vsock transport loaded?)", port);
                        return EXIT_FAILURE;
                }
                log_agent_info("listening on vsock port %u", port);
        }
        msgpack_sbuffer_init(&body);
        agent_proto_ready(agent_uptime_ms(), &body);
        (void)agent_channel_queue(&c, &body);
        msgpack_sbuffer_destroy(&body);
        (void)agent_channel_flush(&c);

        r = agent_loop_run(&c, &state);
        if (r < 0)
                return EXIT_FAILURE;
        (void)agent_channel_drain(&c, SHUTDOWN_DRAIN_MS);
        log_agent_info("shutdown requested: asking the system to power off");
        if (agent_base_env(NULL, &env) >= 0 &&
            agent_spawn(poweroff, env, "/", -1, STDOUT_FILENO, STDERR_FILENO, &pid) >= 0)
                return EXIT_SUCCESS;
        sync();
        reboot(RB_POWER_OFF);
        return log_agent_error_errno(errno, "Failed to power off: %m"), EXIT_FAILURE;
}

/* The VM is useless without its agent: say why on the console and end it, so the host
 * sees the exit instead of a guest that never becomes ready. */
static _Noreturn void fatal(void) {
        log_agent_error("cannot continue, ending the VM");
        agent_power_off(0);
}

static void load_required(agent_modules_t *m, const char *name) {
        int r = agent_modules_load(m, name);

        if (r < 0) {
                log_agent_error_errno(r, "Failed to load module %s: %m", name);
                fatal();
        }
}

static void load_modules(const char *cmdline) {
        _cleanup_(agent_modules_freep) agent_modules_t *m = NULL;
        char dir[PATH_MAX];
        struct utsname u;
        int r;

        uname(&u);
        snprintf(dir, sizeof(dir), "/lib/modules/%s", u.release);
        r = agent_modules_open(dir, cmdline, &m);
        if (r < 0) {
                log_agent_error_errno(r, "Failed to read the module index in %s: %m", dir);
                fatal();
        }
        load_required(m, required_modules[0]);
        /* virtio_mmio probes its devices while it loads: the virtio bus is populated now. */
        for (size_t i = 0; i < ELEMENTSOF(coldplug_buses); i++) {
                r = agent_modules_coldplug(m, coldplug_buses[i]);
                if (r < 0)
                        log_agent_warning_errno(r, "Failed to load drivers for %s, ignoring: %m", coldplug_buses[i]);
        }
        for (size_t i = 1; i < ELEMENTSOF(required_modules); i++)
                load_required(m, required_modules[i]);
}

static _Noreturn void run(void) {
        _cleanup_free_ char *cmdline = NULL, *instance = NULL, *level = NULL, *transport = NULL;
        agent_state_t state;
        agent_channel_t c;
        msgpack_sbuffer body;
        char port[256];
        uint64_t boot_ms;
        sigset_t mask;
        int r;

        agent_state_init(&state);
        umask(022);
        /* Blocked before anything can raise them; the loop reads them from a signalfd. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGIO);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);

        if (agent_init_mounts() < 0)
                fatal();

        r = read_file("/proc/cmdline", AGENT_CMDLINE_MAX, &cmdline, NULL);
        if (r < 0) {
                log_agent_error_errno(r, "Failed to read /proc/cmdline: %m");
                fatal();
        }
        if (cmdline_get(cmdline, "husk.log_level", &level) >= 0 && streq(level, "debug"))
                agent_log_set_max_level(LOG_DEBUG);

        r = cmdline_get(cmdline, "husk.instance", &instance);
        if (r >= 0 && !agent_hostname_valid(instance)) {
                log_agent_warning("husk.instance=%s is not a valid hostname, ignoring", instance);
                r = -EINVAL;
        }
        if (r < 0) {
                free(instance);
                instance = strdup("husk");
                if (!instance)
                        fatal();
        }
        r = agent_init_hostname(instance);
        if (r < 0)
                log_agent_warning_errno(r, "Failed to set the hostname to %s, ignoring: %m", instance);

        log_agent_debug("init done, loading modules");
        load_modules(cmdline);
        log_agent_debug("modules loaded");

        /* eth0 as netd assigned it; the virtio_net driver was loaded with the devices. */
        r = agent_net_parse(cmdline, &state.net);
        if (r == -EINVAL)
                log_agent_warning("husk.ip/husk.gw/husk.dns on the kernel command line are malformed, ignoring them");
        r = agent_net_configure(&state.net);
        if (r < 0)
                log_agent_warning_errno(r, "Failed to configure "
                                           "eth0, ignoring: %m");

        if (cmdline_get(cmdline, "husk.transport", &transport) >= 0 && streq(transport, "vsock")) {
                /* cloud-hypervisor: no virtio-serial, the host reaches us through hybrid vsock. */
                agent_channel_init(&c);
                r = agent_vsock_listen(&c, AGENT_VSOCK_PORT);
                if (r < 0) {
                        log_agent_error_errno(r, "Failed to listen on vsock port %d: %m", AGENT_VSOCK_PORT);
                        fatal();
                }
                goto serve;
        }
        r = agent_channel_find(AGENT_PORT_NAME, PORT_TIMEOUT_MS, port, sizeof(port));
        if (r < 0) {
                log_agent_error_errno(r,
                                      "No virtio-serial port named %s (%m); QEMU needs "
                                      "-device virtserialport,name=%s, and microvm its ACPI tables "
                                      "(this kernel finds virtio-mmio devices through ACPI only)",
                                      AGENT_PORT_NAME, AGENT_PORT_NAME);
                fatal();
        }
        log_agent_debug("found %s", port);
        agent_channel_init(&c);
        r = agent_channel_open(&c, port);
        if (r < 0) {
                log_agent_error_errno(r, "Failed to open %s: %m", port);
                fatal();
        }

serve:
        /* Queued now, written when the host connects: the port takes no bytes before. */
        boot_ms = agent_uptime_ms();
        msgpack_sbuffer_init(&body);
        agent_proto_ready(boot_ms, &body);
        (void)agent_channel_queue(&c, &body);
        msgpack_sbuffer_destroy(&body);
        (void)agent_channel_flush(&c);
        log_agent_info("ready (instance %s, boot %llu ms)", instance, (unsigned long long)boot_ms);

        r = agent_loop_run(&c, &state);
        if (r < 0)
                fatal();
        if (state.power_off) {
                /* The VM exists for its workload: with it gone, so is the VM. Its exit status
                 * is queued for the host; what it left running gets a short grace. */
                (void)agent_channel_drain(&c, SHUTDOWN_DRAIN_MS);
                agent_power_off(WORKLOAD_EXIT_GRACE_MS);
        }
        log_agent_info("shutdown requested (grace %llu ms)", (unsigned long long)state.shutdown_grace_ms);
        (void)agent_channel_drain(&c, SHUTDOWN_DRAIN_MS);
        agent_power_off(state.shutdown_grace_ms);
}

int main(int argc, char *argv[]) {
        /* As PID 1 the arguments are whatever the kernel did not understand on its command
         * line: they are not ours to parse. */
        if (getpid() == 1)
                run();

        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
                        help();
                        return EXIT_SUCCESS;
                }
                if (streq(argv[i], "--vsock")) {
                        uint64_t port;

                        if (i + 1 >= argc || parse_u64(argv[i + 1], &port) < 0 || port == 0 || port > UINT32_MAX - 1) {
                                fprintf(stderr, "%s: --vsock wants a port number\n", program_invocation_short_name);
                                return EXIT_FAILURE;
                        }
                        return run_daemon((unsigned)port);
                }
                if (streq(argv[i], "--version")) {
                        printf("%s (agent protocol %d)\n", AGENT_NAME, AGENT_PROTOCOL_VERSION);
                        return EXIT_SUCCESS;
                }
                fprintf(stderr, "%s: unknown argument %s (see --help)\n", program_invocation_short_name, argv[i]);
                return EXIT_FAILURE;
        }
        fprintf(stderr, "%s: not PID 1: refusing to set up the system (see --help)\n", program_invocation_short_name);
        return EXIT_FAILURE;
}
