/* vmm_ch_runtime.c: the cloud-hypervisor row of the runtime table: setup from runtime.cloud_hypervisor, spawn, vm.create and vm.boot over the API socket, the event monitor, graceful stop, exit reasons, hybrid vsock to the agent. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm_ch.h"

#define API_TIMEOUT_MS 10000
/* CH makes its API socket within milliseconds of its start; this bound only matters on a badly
 * overloaded host (as QMP's). */
#define API_CONNECT_TIMEOUT_MS 30000
#define API_RETRY_FIRST_MS 5
#define API_RETRY_MAX_MS 50

static const char *id_of(const vmm_instance_t *i) { return i->rec.inst.spec.instance_id; }

/* Daemon-wide: what runtime.cloud_hypervisor resolved to. */
typedef struct vmm_ch {
        char *binary_name; /* as configured, for messages */
        char *binary;      /* resolved; NULL when not found */
        char *version;     /* the first line of its --version; NULL: unknown */
        char *firmware;    /* runtime.cloud_hypervisor.firmware_path; NULL: disk images cannot boot */
        char *seccomp;     /* "true", "false" or "log" */
} vmm_ch_t;

/* Per instance (i->runtime_data). */
typedef struct vmm_ch_instance {
        char **argv;       /* built by prepare, used by spawn; NULL after */
        char *vm_config;   /* vm.create's body, built by prepare, sent once the API answers */
        vmm_ch_api_t *api; /* NULL when not connected */
        vmm_ch_events_t *events;
        int retry_timer; /* vm.create before the API socket exists; 0 when none */
        unsigned retry_ms;
        uint64_t connect_deadline_ms;
        int shutdown_timer; /* vmm.shutdown when the guest ignores the power button; 0 when none */
        bool vmm_shutdown_sent;
} vmm_ch_instance_t;

static inline vmm_ch_instance_t *ch_of(const vmm_instance_t *i) { return i->runtime_data; }

/* ---- daemon-wide ---------------------------------------------------------------------------- */

static void free_state(void *state) {
        vmm_ch_t *ch = state;

        if (!ch)
                return;
        free(ch->binary_name);
        free(ch->binary);
        free(ch->version);
        free(ch->firmware);
        free(ch->seccomp);
        free(ch);
}

static int setup(const husk_runtime_config_t *c, void **state) {
        const char *binary = c->binary_path ?: "cloud-hypervisor";
        vmm_ch_t *ch = calloc(1, sizeof(*ch));
        int r;

        if (!ch)
                return log_error_errno(ENOMEM, "Out of memory");
        ch->binary_name = strdup(binary);
        ch->seccomp = strdup(c->seccomp ?: "true");
        ch->firmware = c->firmware_path ? strdup(c->firmware_path) : NULL;
        if (!ch->binary_name || !ch->seccomp || (c->firmware_path && !ch->firmware)) {
                free_state(ch);
                return log_error_errno(ENOMEM, "Out of memory");
        }
        if (c->enabled) {
                r = vmm_find_executable(binary, getenv("PATH"), &ch->binary);
                if (r < 0)
                        /* Not fatal: adopted VMMs still need watching; creates fail naming the binary. */
                        log_error_errno(r,
                                        "runtime.cloud_hypervisor is enabled but its binary %s is not found, "
                                        "instance.create will fail for it: %m",
                                        binary);
                else {
                        r = vmm_binary_version(ch->binary, &ch->version);
                        if (r < 0)
                                log_warning_errno(r, "%s --version failed, ignoring: %m", ch->binary);
                        log_info("cloud-hypervisor runtime: %s (%s), seccomp %s", ch->binary,
                                 ch->version ?: "version unknown", ch->seccomp);
                }
        }
        free_state(*state);
        *state = ch;
        return 0;
}

static void probe(const void *state, vmm_runtime_probe_t *ret) {
        const vmm_ch_t *ch = state;

        if (!ch)
                return;
        *ret = (vmm_runtime_probe_t){
                .binary_name = ch->binary_name, .binary = ch->binary, .version = ch->version, .firmware = ch->firmware
        };
}

static int check(const void *state, const instance_spec_t *s, char **ret_error) {
        const vmm_ch_t *ch = state;

        if (!ch || !ch->binary)
                return error_set(ret_error, -ENOENT,
                                 "cloud-hypervisor binary %s not found (runtime.cloud_hypervisor.binary_path)",
                                 ch ? ch->binary_name : "cloud-hypervisor");
        return 0;
}

/* ---- one instance --------------------------------------------------------------------------- */

static int data_new(vmm_instance_t *i) {
        if (i->runtime_data)
                return 0;
        i->runtime_data = calloc(1, sizeof(vmm_ch_instance_t));
        return i->runtime_data ? 0 : -ENOMEM;
}

static int prepare(vmm_instance_t *i, const void *state, const vmm_launch_t *l, char **ret_error) {
        const vmm_ch_t *ch = state;
        const instance_spec_t *s = &i->rec.inst.spec;
        vmm_ch_params_t p = {
                .instance_id = s->instance_id,
                .cpus = s->cpus,
                .memory_mib = s->memory_mib,
                .kernel = l->kernel,
                .initrd = l->initrd,
                .net = l->net,
                .fs_socket = l->fs_socket,
                .disk = l->disk,
                .disk_format = l->disk_format,
                .boot_disk = l->boot_disk,
                .boot_disk_format = l->boot_disk_format,
                .seed = l->seed,
        };
        char console[PATH_MAX], vsock[sizeof(((struct sockaddr_un *)0)->sun_path)], fs[sizeof(vsock)];
        char volume_sockets[VOLUMES_MAX][sizeof(vsock)];
        vmm_launch_volume_t volumes[VOLUMES_MAX];
        json_t *config = NULL;
        char path[PATH_MAX];
        int fd, r;

        r = data_new(i);
        if (r < 0)
                return error_set(ret_error, r, "out of memory");
        /* CH binds the vsock socket and connects to virtiofsd's by these names. */
        if (snprintf(vsock, sizeof(vsock), "%s/" VMM_CH_VSOCK_SOCKET, i->dir) >= (int)sizeof(vsock) ||
            (l->fs_socket && snprintf(fs, sizeof(fs), "%s/%s", i->dir, l->fs_socket) >= (int)sizeof(fs)))
                return error_set(ret_error, -ENAMETOOLONG,
                                 "instance directory %s is too long for cloud-hypervisor's unix sockets (%zu bytes at "
                                 "most): shorten vmm_driver.instances_dir",
                                 i->dir, sizeof(vsock) - 1);
        snprintf(console, sizeof(console), "%s/" VMM_CH_CONSOLE, i->dir);
        p.console = console;
        p.vsock_socket = vsock;
        p.fs_socket = l->fs_socket ? fs : NULL;
        /* CH connects to each volume's virtiofsd by its absolute path, as to the image's. */
        for (size_t k = 0; k < l->n_volumes && k < VOLUMES_MAX; k++) {
                if (snprintf(volume_sockets[k], sizeof(volume_sockets[k]), "%s/%s", i->dir, l->volumes[k].socket) >=
                    (int)sizeof(volume_sockets[k]))
                        return error_set(
                                ret_error, -ENAMETOOLONG,
                                "instance directory %s is too long for cloud-hypervisor's unix sockets: shorten "
                                "vmm_driver.instances_dir",
                                i->dir);
                volumes[k] = (vmm_launch_volume_t){ .tag = l->volumes[k].tag, .socket = volume_sockets[k] };
        }
        p.volumes = volumes;
        p.n_volumes = l->n_volumes;
        if (l->boot_disk) {
                if (!ch->firmware)
                        return error_set(ret_error, -ENOENT,
                                         "runtime.cloud_hypervisor.firmware_path is not set: disk images boot through "
                                         "firmware (rust-hypervisor-firmware or OVMF's CLOUDHV.fd)");
                if (access(ch->firmware, R_OK) < 0)
                        return error_set(ret_error, -ENOENT, "runtime.cloud_hypervisor.firmware_path %s: %s",
                                         ch->firmware, strerror(errno));
                p.firmware = ch->firmware;
        }
        r = vmm_ch_vm_config(&p, &config);
        if (r < 0)
                return error_set(ret_error, r, "cannot build cloud-hypervisor's vm.create body: %s", strerror(-r));
        ch_of(i)->vm_config = json_dumps(config, JSON_COMPACT);
        json_decref(config);
        if (!ch_of(i)->vm_config)
                return error_set(ret_error, -ENOMEM, "out of memory");
        r = vmm_ch_argv(ch->binary, ch->seccomp, &ch_of(i)->argv);
        if (r < 0)
                return error_set(ret_error, r, "cannot build the cloud-hypervisor command line: %s", strerror(-r));
        /* The event file exists before CH does: vmm-driver watches it from the spawn on. */
        snprintf(path, sizeof(path), "%s/" VMM_CH_EVENTS, i->dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return error_set(ret_error, -errno, "cannot create %s: %s", path, strerror(errno));
        close(fd);
        return 0;
}

static int spawn(vmm_instance_t *i, pid_t *ret_pid, char **ret_error) {
        _cleanup_(vmm_strv_freep) char **argv = TAKE_PTR(ch_of(i)->argv);
        int r;

        if (!argv)
                return error_set(ret_error, -EINVAL, "cloud-hypervisor: nothing prepared to start");
        r = vmm_spawn(i->dir, argv, VMM_CH_LOG, ret_pid);
        if (r < 0)
                return error_set(ret_error, r, "cannot start %s: %s", argv[0], strerror(-r));
        log_debug("Instance %s: %s pid %d", id_of(i), argv[0], (int)*ret_pid);
        return 0;
}

/* CH answers 204 to most actions, but 200 to vmm.shutdown (its spec says 204): any 2xx. */
static bool success(long status) { return status >= 200 && status < 300; }

/* Why the last answer was not a success: CH's error body, one line. */
static void log_refused(vmm_instance_t *i, const char *what, long status, const char *body) {
        char line[512];
        size_t n = strcspn(body, "\n");

        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), body);
        log_warning("Instance %s: cloud-hypervisor refused %s (HTTP %ld): %s", id_of(i), what, status, line);
}

/* A refused create or boot leaves a VMM without a guest: it must not linger as "starting". */
static void give_up(vmm_instance_t *i) {
        int r;

        if (i->pidfd < 0)
                return;
        r = vmm_pidfd_kill(i->pidfd, SIGKILL);
        if (r < 0 && r != -ESRCH)
                log_warning_errno(r, "Instance %s: cannot kill its cloud-hypervisor, ignoring: %m", id_of(i));
}

static void on_boot(vmm_instance_t *i, int error, long status, const char *body, void *userdata) {
        if (error < 0 || !success(status)) {
                if (error < 0)
                        log_warning_errno(error, "Instance %s: vm.boot failed: %m", id_of(i));
                else
                        log_refused(i, "vm.boot", status, body);
                give_up(i);
                return;
        }
        log_debug("Instance %s: cloud-hypervisor booted the VM", id_of(i));
        vmm_instance_on_running(i);
}

static void send_create(vmm_instance_t *i);

static int on_retry(zloop_t *loop, int timer_id, void *arg) {
        vmm_instance_t *i = arg;

        if (!i->runtime_data || timer_id != ch_of(i)->retry_timer)
                return 0;
        ch_of(i)->retry_timer = 0;
        send_create(i);
        return 0;
}

static void on_create(vmm_instance_t *i, int error, long status, const char *body, void *userdata) {
        vmm_ch_instance_t *ci = ch_of(i);
        int r;

        if (error == -ECONNREFUSED && now_monotonic_ms() < ci->connect_deadline_ms) {
                /* No API socket yet (nothing was sent): again, a little later. */
                ci->retry_timer = zloop_timer(i->vmm->loop, ci->retry_ms, 1, on_retry, i);
                if (ci->retry_timer < 0)
                        ci->retry_timer = 0;
                ci->retry_ms = ci->retry_ms * 2 > API_RETRY_MAX_MS ? API_RETRY_MAX_MS : ci->retry_ms * 2;
                return;
        }
        if (error < 0 || !success(status)) {
                if (error < 0)
                        log_warning_errno(error, "Instance %s: vm.create failed: %m", id_of(i));
                else
                        log_refused(i, "vm.create", status, body);
                give_up(i);
                return;
        }
        r = vmm_ch_api_call(ci->api, "PUT", "vm.boot", NULL, API_TIMEOUT_MS, on_boot, NULL);
        if (r < 0) {
                log_warning_errno(r, "Instance %s: cannot send vm.boot: %m", id_of(i));
                give_up(i);
        }
}

static void send_create(vmm_instance_t *i) {
        int r = vmm_ch_api_call(ch_of(i)->api, "PUT", "vm.create", ch_of(i)->vm_config, API_TIMEOUT_MS, on_create,
                                NULL);

        if (r < 0) {
                log_warning_errno(r, "Instance %s: cannot send vm.create: %m", id_of(i));
                give_up(i);
        }
}

static void on_vmm_shutdown(vmm_instance_t *i, int error, long status, const char *body, void *userdata) {
        /* The exit itself is what counts (pidfd); a refusal leaves SIGKILL at the stop timeout. */
        if (error < 0)
                log_debug_errno(error, "Instance %s: vmm.shutdown not answered: %m", id_of(i));
        else if (!success(status))
                log_refused(i, "vmm.shutdown", status, body);
}

static void send_vmm_shutdown(vmm_instance_t *i) {
        vmm_ch_instance_t *ci = ch_of(i);
        int r;

        if (!ci || !ci->api || ci->vmm_shutdown_sent)
                return;
        ci->vmm_shutdown_sent = true;
        r = vmm_ch_api_call(ci->api, "PUT", "vmm.shutdown", NULL, API_TIMEOUT_MS, on_vmm_shutdown, NULL);
        if (r < 0)
                log_debug_errno(r, "Instance %s: cannot send vmm.shutdown: %m", id_of(i));
}

/* Reasons are QEMU's words (SCHEMA.md: shutdown_reason), so both rows read alike. The first
 * one stays: a reset or panic ends in the VMM's own shutdown events. */
static void set_reason(vmm_instance_t *i, const char *reason) {
        if (!i->rec.shutdown_reason)
                vmm_instance_on_shutdown_event(i, reason);
}

static void on_event(vmm_instance_t *i, const vmm_ch_event_t *e) {
        log_debug("Instance %s: cloud-hypervisor event %s %s", id_of(i), e->source, e->event);
        if (streq(e->source, "vm") && streq(e->event, "booted"))
                vmm_instance_on_running(i);
        else if (streq(e->source, "guest") && streq(e->event, "panic")) {
                set_reason(i, "guest-panic");
                send_vmm_shutdown(i);
        } else if (streq(e->source, "vm") && streq(e->event, "rebooting")) {
                /* CH reboots the guest in place; restarts are the scheduler's decision, so a reset
                 * ends the VMM as QEMU's -no-reboot does. */
                set_reason(i, "guest-reset");
                send_vmm_shutdown(i);
        } else if ((streq(e->source, "vm") && streq(e->event, "shutdown")) ||
                   (streq(e->source, "vmm") && streq(e->event, "shutdown")))
                /* The guest powered off, or CH was asked to end (vmm.shutdown, SIGTERM). */
                set_reason(i, i->rec.stop_requested_at > 0 || ch_of(i)->vmm_shutdown_sent ? "host-shutdown"
                                                                                          : "guest-shutdown");
}

static int connect_channels(vmm_instance_t *i) {
        vmm_ch_instance_t *ci = ch_of(i);
        int r;

        if (!ci->api) {
                r = vmm_ch_api_new(i, VMM_CH_API_SOCKET, &ci->api);
                if (r < 0)
                        return r;
        }
        if (!ci->events) {
                r = vmm_ch_events_start(i, on_event, &ci->events);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void ch_connect(vmm_instance_t *i) {
        vmm_ch_instance_t *ci = ch_of(i);
        int r;

        if (!ci)
                return;
        r = connect_channels(i);
        if (r < 0) {
                log_error_errno(r, "Instance %s: cannot reach cloud-hypervisor's API or events: %m", id_of(i));
                give_up(i);
                return;
        }
        ci->retry_ms = API_RETRY_FIRST_MS;
        ci->connect_deadline_ms = now_monotonic_ms() + API_CONNECT_TIMEOUT_MS;
        send_create(i);
}

static void on_info(vmm_instance_t *i, int error, long status, const char *body, void *userdata) {
        json_t *info;
        const char *state;

        if (error < 0 || status != 200) {
                if (error < 0)
                        log_warning_errno(error, "Instance %s: vm.info failed after adoption: %m", id_of(i));
                else
                        log_refused(i, "vm.info", status, body);
                return;
        }
        info = json_loads(body, 0, NULL);
        state = json_string_value(json_object_get(info, "state"));
        log_debug("Instance %s: adopted cloud-hypervisor VM is %s", id_of(i), state ?: "?");
        if (state && streq(state, "Running"))
                vmm_instance_on_running(i);
        else if (state && streq(state, "Created") &&
                 vmm_ch_api_call(ch_of(i)->api, "PUT", "vm.boot", NULL, API_TIMEOUT_MS, on_boot, NULL) < 0)
                /* vmm-driver died between vm.create and vm.boot. */
                give_up(i);
        json_decref(info);
}

static int adopt(vmm_instance_t *i) {
        int r = data_new(i);

        if (r < 0)
                return r;
        r = connect_channels(i);
        if (r < 0)
                return r;
        return vmm_ch_api_call(ch_of(i)->api, "GET", "vm.info", NULL, API_TIMEOUT_MS, on_info, NULL);
}

static void drain(vmm_instance_t *i) {
        if (i->runtime_data)
                vmm_ch_events_drain(ch_of(i)->events);
}

static void disconnect(vmm_instance_t *i) {
        vmm_ch_instance_t *ci = ch_of(i);

        if (!ci)
                return;
        if (ci->retry_timer)
                zloop_timer_end(i->vmm->loop, ci->retry_timer);
        if (ci->shutdown_timer)
                zloop_timer_end(i->vmm->loop, ci->shutdown_timer);
        ci->retry_timer = ci->shutdown_timer = 0;
        vmm_ch_api_close(ci->api);
        vmm_ch_events_close(ci->events);
}

static void release(vmm_instance_t *i) {
        vmm_ch_instance_t *ci = ch_of(i);

        if (!ci)
                return;
        disconnect(i);
        vmm_ch_api_free(&ci->api);
        vmm_ch_events_free(&ci->events);
        vmm_strv_free(ci->argv);
        free(ci->vm_config);
        free(ci);
        i->runtime_data = NULL;
}

static int on_shutdown_timer(zloop_t *loop, int timer_id, void *arg) {
        vmm_instance_t *i = arg;

        if (!i->runtime_data || timer_id != ch_of(i)->shutdown_timer)
                return 0;
        ch_of(i)->shutdown_timer = 0;
        log_debug("Instance %s: the guest ignored the power button, vmm.shutdown", id_of(i));
        send_vmm_shutdown(i);
        return 0;
}

static void on_power_button(vmm_instance_t *i, int error, long status, const char *body, void *userdata) {
        if (error < 0)
                log_debug_errno(error, "Instance %s: vm.power-button not answered: %m", id_of(i));
        else if (!success(status))
                log_refused(i, "vm.power-button", status, body);
}

/* The power button (ACPI): a guest without a running agent still powers off. If it does not,
 * vmm.shutdown after the agent's grace (three quarters of the timeout, vmm_instance_stop), and
 * the caller's SIGKILL at the timeout. */
static int ch_shutdown(vmm_instance_t *i) {
        vmm_ch_instance_t *ci = ch_of(i);
        uint64_t timeout = vmm_config(i->vmm)->vmm_driver.stop_timeout_ms;
        int r;

        if (!ci || !ci->api)
                return -ENOTCONN;
        r = vmm_ch_api_call(ci->api, "PUT", "vm.power-button", NULL, API_TIMEOUT_MS, on_power_button, NULL);
        if (r < 0)
                return r;
        if (!ci->shutdown_timer) {
                ci->shutdown_timer = zloop_timer(i->vmm->loop, timeout * 7 / 8, 1, on_shutdown_timer, i);
                if (ci->shutdown_timer < 0)
                        ci->shutdown_timer = 0;
        }
        return 0;
}

static int agent_connect(vmm_instance_t *i) { return vmm_instance_connect(i, VMM_CH_VSOCK_SOCKET); }

const vmm_runtime_t vmm_ch_runtime = {
        .name = "cloud-hypervisor",
        .console_file = VMM_CH_CONSOLE,
        .output_file = VMM_CH_LOG,
        .agent_transport = "hybrid vsock",
        .agent_socket = VMM_CH_VSOCK_SOCKET,
        .agent_handshake = "CONNECT " STRINGIFY(AGENT_VSOCK_PORT) "\n",
        .agent_handshake_ok = "OK ",
        .setup = setup,
        .probe = probe,
        .free_state = free_state,
        .check = check,
        .prepare = prepare,
        .spawn = spawn,
        .connect = ch_connect,
        .adopt = adopt,
        .drain = drain,
        .disconnect = disconnect,
        .release = release,
        .shutdown = ch_shutdown,
        .agent_connect = agent_connect,
};
