/* vmm_qemu_runtime.c: the qemu row of the runtime table: setup from runtime.qemu, spawn, QMP as the control channel, exit reasons, the virtio-serial agent socket. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm_qemu.h"

#define AGENT_SOCKET "agent.sock" /* QEMU's end of the husk.agent virtio-serial port (vmm_qemu.c) */

static const char *id_of(const vmm_instance_t *i) { return i->rec.inst.spec.instance_id; }

/* ---- daemon-wide ---------------------------------------------------------------------------- */

static void free_state(void *state) {
        vmm_qemu_t *q = state;

        if (!q)
                return;
        free(q->binary_name);
        free(q->binary);
        free(q->version);
        free(q->firmware);
        free(q->firmware_vars);
        free(q);
}

/* The binary, the accelerator, the TSC frequency. */
static int setup(const husk_runtime_config_t *c, void **state) {
        const char *binary = c->binary_path ?: "qemu-system-x86_64";
        uint64_t tcg_cache_mib;
        vmm_qemu_t *q;
        const char *accel;
        int r;

        accel = vmm_qemu_accel_resolve(c->accel, c->accel && !streq(c->accel, "auto") ? false : vmm_kvm_usable());
        if (!accel)
                return log_error_errno(EINVAL, "runtime.qemu.accel: must be one of kvm, tcg, auto (got %s)", c->accel);
        q = calloc(1, sizeof(*q));
        if (!q || !(q->binary_name = strdup(binary))) {
                free(q);
                return log_error_errno(ENOMEM, "Out of memory");
        }
        if (c->enabled) {
                r = vmm_find_executable(binary, getenv("PATH"), &q->binary);
                if (r < 0)
                        /* Not fatal: adopted VMMs still need watching; creates fail with a clear error. */
                        log_warning_errno(r, "qemu binary %s not found, instance.create will fail: %m", binary);
                else {
                        r = vmm_binary_version(q->binary, &q->version);
                        if (r < 0)
                                log_warning_errno(r, "%s --version failed, ignoring: %m", q->binary);
                        log_info("qemu runtime: %s (%s), accel %s", q->binary, q->version ?: "version unknown", accel);
                }
        }
        q->accel = accel;
        /* QEMU takes MiB: a size under 1 MiB is 1 MiB, never 0 (QEMU's default of 1 GiB). */
        tcg_cache_mib = c->tcg_translation_cache >> 20;
        if (c->tcg_translation_cache > 0)
                q->tcg_cache_mib = tcg_cache_mib == 0           ? 1
                                   : tcg_cache_mib > UINT32_MAX ? UINT32_MAX
                                                                : (uint32_t)tcg_cache_mib;
        if (c->firmware_path) {
                /* Checked when a disk boots, so that a host without OVMF still runs the kit. */
                q->firmware = strdup(c->firmware_path);
                r = vmm_qemu_firmware_vars(c->firmware_path, &q->firmware_vars);
                if (!q->firmware || r == -ENOMEM) {
                        free_state(q);
                        return log_error_errno(ENOMEM, "Out of memory");
                }
        }
        if (streq(q->accel, "tcg")) {
                r = vmm_host_tsc_khz(&q->tsc_khz);
                if (r < 0)
                        log_warning_errno(
                                r, "Cannot tell guests the TSC frequency, their boots may hang on a busy host: %m");
                else
                        log_debug("Host TSC: %" PRIu64 " kHz", q->tsc_khz);
        }
        free_state(*state);
        *state = q;
        return 0;
}

static void probe(const void *state, vmm_runtime_probe_t *ret) {
        const vmm_qemu_t *q = state;

        if (!q)
                return;
        *ret = (vmm_runtime_probe_t){ .binary_name = q->binary_name,
                                      .binary = q->binary,
                                      .version = q->version,
                                      .accel = q->accel,
                                      .firmware = q->firmware };
}

static int check(const void *state, const instance_spec_t *s, char **ret_error) {
        const vmm_qemu_t *q = state;

        if (!q || !q->binary)
                return error_set(ret_error, -ENOENT, "qemu binary %s not found",
                                 q ? q->binary_name : "qemu-system-x86_64");
        return 0;
}

/* ---- one instance --------------------------------------------------------------------------- */

static int data_new(vmm_instance_t *i) {
        vmm_qemu_instance_t *qi;

        if (i->runtime_data)
                return 0;
        qi = calloc(1, sizeof(*qi));
        if (!qi)
                return -ENOMEM;
        qi->qmp.fd = -1;
        i->runtime_data = qi;
        return 0;
}

/* The firmware, and the instance's own copy of its variables store (the firmware writes its
 * boot entries there; the template is never written). */
static int prepare_firmware(vmm_instance_t *i, const vmm_qemu_t *q, char **ret_error) {
        _cleanup_free_ char *vars = NULL;
        char path[PATH_MAX];
        size_t size;
        int r;

        if (!q->firmware)
                return error_set(
                        ret_error, -ENOENT,
                        "runtime.qemu.firmware_path is not set: disk images boot through UEFI firmware (Debian's "
                        "ovmf)");
        if (access(q->firmware, R_OK) < 0)
                return error_set(ret_error, -ENOENT,
                                 "runtime.qemu.firmware_path %s: %s (install Debian's ovmf, or point it at OVMF_CODE)",
                                 q->firmware, strerror(errno));
        if (!q->firmware_vars)
                return error_set(
                        ret_error, -ENOENT,
                        "runtime.qemu.firmware_path %s: no variables template beside it (its name must hold CODE, "
                        "the template's VARS)",
                        q->firmware);
        r = read_file(q->firmware_vars, 64u << 20, &vars, &size);
        if (r < 0)
                return error_set(ret_error, r, "firmware variables template %s: %s", q->firmware_vars, strerror(-r));
        snprintf(path, sizeof(path), "%s/" VMM_QEMU_FIRMWARE_VARS, i->dir);
        r = write_file_atomic(path, vars, size, 0600);
        if (r < 0)
                return error_set(ret_error, r, "cannot write %s: %s", path, strerror(-r));
        return 0;
}

/* A clone: the template's machine, devices and kernel command line, its RAM mapped privately,
 * waiting for the template's state; the instance's own TAP and image. */
static int prepare_clone(const vmm_qemu_t *q, const instance_spec_t *s, const vmm_launch_t *l, vmm_qemu_params_t *p,
                         char **ret_error) {
        vmm_profile_t profile = { .kernel = l->kernel,
                                  .initrd = l->initrd,
                                  .cpus = s->cpus,
                                  .memory_mib = s->memory_mib,
                                  .net = l->net != NULL,
                                  .fs = l->ninep_export != NULL,
                                  .volumes = (uint32_t)l->n_volumes };
        static char memory[PATH_MAX]; /* read by vmm_qemu_argv() right after */
        int r;

        r = vmm_qemu_template_params(q, &profile, p);
        if (r < 0)
                return error_set(ret_error, r, "qemu binary not found");
        if (snprintf(memory, sizeof(memory), "%s/" VMM_TEMPLATE_MEMORY, l->template_dir) >= (int)sizeof(memory) ||
            strchr(l->template_dir, ','))
                return error_set(ret_error, -EINVAL, "template directory %s: too long or holds a ','", l->template_dir);
        p->instance_id = s->instance_id;
        p->memory_file = memory;
        p->clone = true;
        p->ninep_export = l->ninep_export;
        p->net = l->net;
        /* The volumes over 9p, the template's devices: no vhost-user-fs (no virtiofsd). */
        p->ninep_volumes = l->volumes;
        p->n_ninep_volumes = l->n_volumes;
        p->volumes = NULL;
        p->n_volumes = 0;
        return 0;
}

static int prepare(vmm_instance_t *i, const void *state, const vmm_launch_t *l, char **ret_error) {
        const vmm_qemu_t *q = state;
        const instance_spec_t *s = &i->rec.inst.spec;
        vmm_qemu_params_t p = {
                .binary = q->binary,
                .accel = q->accel,
                .kernel = l->kernel,
                .initrd = l->initrd,
                .instance_id = s->instance_id,
                .cpus = s->cpus,
                .memory_mib = s->memory_mib,
                .tsc_khz = q->tsc_khz,
                .tcg_cache_mib = q->tcg_cache_mib,
                .net = l->net,
                .fs_socket = l->fs_socket,
                .disk = l->disk,
                .disk_format = l->disk_format,
                .boot_disk = l->boot_disk,
                .boot_disk_format = l->boot_disk_format,
                .seed = l->seed,
                .volumes = l->volumes,
                .n_volumes = l->n_volumes,
        };
        int r;

        r = data_new(i);
        if (r < 0)
                return error_set(ret_error, r, "out of memory");
        if (l->template_dir) {
                r = prepare_clone(q, s, l, &p, ret_error);
                if (r < 0)
                        return r;
        }
        if (l->boot_disk) {
                r = prepare_firmware(i, q, ret_error);
                if (r < 0)
                        return r;
                p.firmware = q->firmware;
                p.firmware_vars = VMM_QEMU_FIRMWARE_VARS;
                if (strchr(q->firmware, ','))
                        return error_set(ret_error, -EINVAL,
                                         "runtime.qemu.firmware_path %s: must not contain ',' (QEMU option syntax)",
                                         q->firmware);
        }
        r = vmm_qemu_argv(&p, &vmm_qemu_of(i)->argv);
        if (r < 0)
                return error_set(ret_error, r, "cannot build the qemu command line: %s", strerror(-r));
        vmm_qemu_of(i)->accel = q->accel;
        return 0;
}

static int spawn(vmm_instance_t *i, pid_t *ret_pid, char **ret_error) {
        _cleanup_(vmm_strv_freep) char **argv = TAKE_PTR(vmm_qemu_of(i)->argv);
        int r;

        if (!argv)
                return error_set(ret_error, -EINVAL, "qemu: nothing prepared to start");
        r = vmm_spawn(i->dir, argv, VMM_QEMU_LOG, ret_pid);
        if (r < 0)
                return error_set(ret_error, r, "cannot start %s: %s", argv[0], strerror(-r));
        log_debug("Instance %s: %s pid %d, accel %s", id_of(i), argv[0], (int)*ret_pid, vmm_qemu_of(i)->accel);
        return 0;
}

static void qemu_connect(vmm_instance_t *i) {
        if (i->runtime_data)
                vmm_qmp_start(i);
}

static int adopt(vmm_instance_t *i) {
        int r = data_new(i);

        if (r < 0)
                return r;
        vmm_qmp_start(i);
        return 0;
}

static void drain(vmm_instance_t *i) {
        if (i->runtime_data)
                vmm_qmp_drain(i);
}

static void disconnect(vmm_instance_t *i) {
        if (i->runtime_data)
                vmm_qmp_stop(i);
}

static void release(vmm_instance_t *i) {
        vmm_qemu_instance_t *qi = i->runtime_data;

        if (!qi)
                return;
        free(qi->qmp.buf);
        vmm_strv_free(qi->argv);
        free(qi);
        i->runtime_data = NULL;
}

/* ACPI powerdown: a guest without a running agent still powers off. */
static int qemu_shutdown(vmm_instance_t *i) {
        if (!i->runtime_data)
                return -ENOTCONN;
        return vmm_qmp_execute(i, "system_powerdown");
}

static int agent_connect(vmm_instance_t *i) { return vmm_instance_connect(i, AGENT_SOCKET); }

const vmm_runtime_t vmm_qemu_runtime = {
        .name = "qemu",
        .console_file = "console.log", /* -serial file:console.log (vmm_qemu.c) */
        .output_file = VMM_QEMU_LOG,
        .agent_transport = "virtio-serial",
        .agent_socket = AGENT_SOCKET,
        .setup = setup,
        .probe = probe,
        .free_state = free_state,
        .check = check,
        .prepare = prepare,
        .spawn = spawn,
        .connect = qemu_connect,
        .adopt = adopt,
        .drain = drain,
        .disconnect = disconnect,
        .release = release,
        .shutdown = qemu_shutdown,
        .agent_connect = agent_connect,
        .templates = &vmm_qemu_template_ops,
};
