/* oci_vm.c: start and stop a container's VM with vmm-driver's own pieces: vmm_qemu_argv (the kit's microvm), vmm_spawn, and virtiofsd through vmm_fs_start_export. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/oci/oci_vm.h"
#include "cli/oci/oci_template.h"
#include "lib/config.h"
#include "services/vmm-driver/vmm_qemu.h"

#define QMP_TIMEOUT_MS 5000

int oci_vm_rootfs(const char *bundle, const oci_spec_t *spec, char **ret, char **ret_error) {
        char path[PATH_MAX];
        struct stat st;
        char *resolved;

        if (snprintf(path, sizeof(path), "%s%s%s", spec->root_path[0] == '/' ? "" : bundle,
                     spec->root_path[0] == '/' ? "" : "/", spec->root_path) >= (int)sizeof(path))
                return error_set(ret_error, -ENAMETOOLONG, "root.path: too long");
        resolved = realpath(path, NULL);
        if (!resolved || stat(resolved, &st) < 0)
                return error_set(ret_error, -ENOENT, "root.path: %s: %m", path);
        if (!S_ISDIR(st.st_mode)) {
                free(resolved);
                return error_set(ret_error, -ENOTDIR, "root.path: %s is not a directory", path);
        }
        if (strchr(resolved, ',')) {
                free(resolved);
                return error_set(ret_error, -EINVAL, "root.path: %s contains ',' (virtiofsd option syntax)", path);
        }
        *ret = resolved;
        return 0;
}

/* The guest's instance name: the id's first characters that QEMU's -name and the kernel command
 * line take as they are. */
static void vm_name(const char *id, char *buf, size_t size) {
        size_t n = 0;

        for (const char *p = id; *p && n + 1 < size && n < 40; p++)
                buf[n++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                                                  *p == '-' || *p == '_' || *p == '.'
                                          ? *p
                                          : '_');
        buf[n] = '\0';
}

typedef struct share {
        char *source; /* the host directory shared */
        bool readonly;
} share_t;

/* Bind mounts as virtiofsd shares: a directory is shared itself, a file through its directory;
 * the other mounts (proc, sysfs,
 * tmpfs, devpts...) are the guest's own. */
static int plan_mounts(const oci_spec_t *spec, oci_vm_t *vm, share_t *shares, size_t *n_shares, char **ret_error) {
        vm->mounts = calloc(spec->n_mounts + 1, sizeof(oci_vm_mount_t));
        if (!vm->mounts)
                return -ENOMEM;
        for (size_t k = 0; k < spec->n_mounts; k++) {
                const oci_mount_t *m = &spec->mounts[k];
                _cleanup_free_ char *resolved = NULL;
                oci_vm_mount_t *vmnt;
                struct stat st;
                char *dir, *slash;
                size_t s;

                if (!m->bind)
                        continue;
                resolved = realpath(m->source, NULL);
                if (!resolved || stat(resolved, &st) < 0)
                        return error_set(ret_error, -ENOENT, "mounts[%zu].source: %s: %m", k, m->source);
                if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
                        return error_set(ret_error, -EINVAL,
                                         "mounts[%zu].source: %s is neither a directory nor a regular file", k,
                                         m->source);
                if (strchr(resolved, ','))
                        return error_set(ret_error, -EINVAL,
                                         "mounts[%zu].source: %s contains ',' (virtiofsd option syntax)", k, m->source);
                vmnt = &vm->mounts[vm->n_mounts];
                vmnt->destination = strdup(m->destination);
                if (!vmnt->destination)
                        return -ENOMEM;
                vmnt->readonly = m->readonly;
                vm->n_mounts++;
                if (S_ISDIR(st.st_mode))
                        dir = TAKE_PTR(resolved);
                else {
                        slash = strrchr(resolved, '/');
                        vmnt->file = strdup(slash + 1);
                        if (!vmnt->file)
                                return -ENOMEM;
                        *slash = '\0';
                        dir = strdup(*resolved ? resolved : "/");
                        if (!dir)
                                return -ENOMEM;
                }
                /* One share per mount, even for files of one directory (Docker's hosts, hostname
                 * and resolv.conf): the guest can mount a virtio-fs tag only once. */
                s = *n_shares;
                {
                        if (s == OCI_VM_SHARES_MAX) {
                                free(dir);
                                return error_set(ret_error, -E2BIG,
                                                 "mounts: more than %d host directories to share into the VM",
                                                 OCI_VM_SHARES_MAX);
                        }
                        shares[s] = (share_t){ .source = dir, .readonly = m->readonly };
                        (*n_shares)++;
                }
                snprintf(vmnt->tag, sizeof(vmnt->tag), "m%u", (unsigned)s);
        }
        return 0;
}

static int start_share(const char *dir, const char *socket, const char *log, const char *source, bool readonly,
                       int64_t *pid, uint64_t *start, char **ret_error) {
        vmm_fs_export_t e = { .socket = socket,
                              .log = log,
                              .source = source,
                              .readonly = readonly,
                              .ret_pid = pid,
                              .ret_start_time = start };
        _cleanup_free_ char *why = NULL;
        int r;

        r = vmm_fs_start_export(dir, &e, &why);
        if (r < 0)
                return error_set(ret_error, r, "cannot share %s into the VM: %s", source, why ?: strerror(-r));
        return 0;
}

int oci_vm_start(const oci_ctx_t *ctx, const oci_spec_t *spec, const char *rootfs, const char *dir,
                 const vmm_net_t *net, oci_vm_t *vm, char **ret_error) {
        _cleanup_(husk_config_freep) husk_config_t *config = NULL;
        _cleanup_free_ char *why = NULL, *qemu = NULL;
        share_t shares[OCI_VM_SHARES_MAX] = {};
        vmm_launch_volume_t volumes[OCI_VM_SHARES_MAX];
        char sockets[OCI_VM_SHARES_MAX][24], tags[OCI_VM_SHARES_MAX][16], logs[OCI_VM_SHARES_MAX][40], name[48];
        char **argv = NULL;
        size_t n_shares = 0;
        const char *accel, *kernel, *initrd;
        uint64_t tsc_khz = 0;
        uint32_t cpus, mib;
        pid_t pid;
        int r;

        *vm = (oci_vm_t){};
        r = husk_config_load(husk_config_path(ctx->config), &config, &why);
        if (r < 0)
                return error_set(ret_error, r, "husk config: %s", why ?: strerror(-r));
        kernel = ctx->kernel ?: config->kit.kernel;
        initrd = ctx->initrd ?: config->kit.initrd;
        if (access(kernel, R_OK) < 0)
                return error_set(ret_error, -errno, "kernel %s: %m (--kernel or the config's kit.kernel)", kernel);
        if (access(initrd, R_OK) < 0)
                return error_set(ret_error, -errno, "initrd %s: %m (--initrd or the config's kit.initrd)", initrd);
        r = vmm_find_executable(ctx->qemu ?: config->qemu.binary_path, getenv("PATH"), &qemu);
        if (r < 0)
                return error_set(ret_error, r, "QEMU %s: not found (--qemu or the config's runtime.qemu.binary_path)",
                                 ctx->qemu ?: config->qemu.binary_path);
        accel = ctx->accel ?: config->qemu.accel;
        accel = vmm_qemu_accel_resolve(accel, accel && !streq(accel, "auto") ? false : vmm_kvm_usable());
        if (!accel)
                return error_set(ret_error, -EINVAL, "--accel: must be kvm, tcg or auto");
        if (streq(accel, "tcg") && vmm_host_tsc_khz(&tsc_khz) < 0)
                tsc_khz = 0;
        oci_spec_vm_size(spec, ctx->cpus, ctx->memory_mib, &cpus, &mib);

        r = plan_mounts(spec, vm, shares, &n_shares, ret_error);
        if (r < 0)
                goto fail;
        if (ctx->template_dir) {
                vmm_qemu_t q = { .binary = qemu, .accel = accel, .tsc_khz = tsc_khz };
                vmm_launch_volume_t clone_volumes[OCI_VM_SHARES_MAX];
                oci_clone_t c = { .qemu = &q,
                                  .profile = { .kernel = kernel,
                                               .initrd = initrd,
                                               .cpus = cpus,
                                               .memory_mib = mib,
                                               .net = net && net->attached,
                                               .fs = true,
                                               .volumes = (uint32_t)n_shares },
                                  .rootfs = rootfs,
                                  .rootfs_writable = !spec->root_readonly,
                                  .volumes = clone_volumes,
                                  .net = net };

                for (size_t s = 0; s < n_shares; s++)
                        clone_volumes[s] =
                                (vmm_launch_volume_t){ .path = shares[s].source, .readonly = shares[s].readonly };
                r = oci_template_start(ctx->template_dir, &c, dir, &pid, &why);
                if (r >= 0) {
                        vm->clone = true;
                        vm->qemu_pid = pid;
                        if (vmm_proc_start_time(pid, &vm->qemu_start) < 0)
                                vm->qemu_start = 0;
                        /* Over 9p now: the template's tags (the agent mounts them as 9p). */
                        for (size_t k = 0; k < vm->n_mounts; k++) {
                                unsigned share = 0;

                                (void)sscanf(vm->mounts[k].tag, "m%u", &share);
                                snprintf(vm->mounts[k].tag, sizeof(vm->mounts[k].tag), VMM_TEMPLATE_VOLUME_TAG,
                                         (size_t)share);
                        }
                        for (size_t s = 0; s < n_shares; s++)
                                free(shares[s].source);
                        return 0;
                }
                /* A template is an optimisation, never a reason for a container not to start. */
                oci_warning("template in %s: %s; booting the VM cold", ctx->template_dir, why ?: strerror(-r));
                free(TAKE_PTR(why));
        }
        r = start_share(dir, VMM_FS_SOCKET, "virtiofsd.log", rootfs, spec->root_readonly, &vm->fs_pid[0],
                        &vm->fs_start[0], ret_error);
        if (r < 0)
                goto fail;
        vm->n_fs = 1;
        for (size_t s = 0; s < n_shares; s++) {
                snprintf(sockets[s], sizeof(sockets[s]), "m%u.sock", (unsigned)s);
                snprintf(logs[s], sizeof(logs[s]), "virtiofsd-m%u.log", (unsigned)s);
                r = start_share(dir, sockets[s], logs[s], shares[s].source, shares[s].readonly, &vm->fs_pid[s + 1],
                                &vm->fs_start[s + 1], ret_error);
                if (r < 0)
                        goto fail;
                vm->n_fs++;
                /* A share's tag is "m" and its index, as plan_mounts named it in the mounts. */
                snprintf(tags[s], sizeof(tags[s]), "m%u", (unsigned)s);
                volumes[s] = (vmm_launch_volume_t){ .tag = tags[s], .socket = sockets[s] };
        }
        vm_name(spec->hostname ?: "oci", name, sizeof(name));
        {
                vmm_qemu_params_t p = { .binary = qemu,
                                        .accel = accel,
                                        .kernel = kernel,
                                        .initrd = initrd,
                                        .instance_id = name,
                                        .cpus = cpus,
                                        .memory_mib = mib,
                                        .tsc_khz = tsc_khz,
                                        .net = net && net->attached ? net : NULL,
                                        .fs_socket = VMM_FS_SOCKET,
                                        .volumes = volumes,
                                        .n_volumes = n_shares };

                r = vmm_qemu_argv(&p, &argv);
        }
        if (r < 0) {
                error_set(ret_error, r, "cannot build QEMU's command line: %s", strerror(-r));
                goto fail;
        }
        r = vmm_spawn(dir, argv, OCI_VM_QEMU_LOG, &pid);
        vmm_strv_free(argv);
        if (r < 0) {
                error_set(ret_error, r, "cannot start %s: %s", qemu, strerror(-r));
                goto fail;
        }
        vm->qemu_pid = pid;
        if (vmm_proc_start_time(pid, &vm->qemu_start) < 0)
                vm->qemu_start = 0;
        for (size_t s = 0; s < n_shares; s++)
                free(shares[s].source);
        return 0;
fail:
        for (size_t s = 0; s < n_shares; s++)
                free(shares[s].source);
        oci_vm_kill(vm);
        return r;
}

static void kill_one_unreaped(pid_t pid, uint64_t start) {
        uint64_t now;

        if (pid > 0 && vmm_proc_start_time(pid, &now) == 0 && now == start)
                (void)kill(pid, SIGKILL);
}

static void kill_one(pid_t pid, uint64_t start) {
        uint64_t now;

        if (pid <= 0 || vmm_proc_start_time(pid, &now) < 0 || (start && now != start))
                return;
        (void)kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
}

int oci_vm_dir(const char *dir, char *buf, size_t size) {
        uint64_t h = fnv1a_64(dir, strlen(dir));
        int r;

        /* Short enough for every socket name below sun_path's 108 bytes: the container's own. */
        if (strlen(dir) + 24 < sizeof(((struct sockaddr_un *)0)->sun_path)) {
                if (snprintf(buf, size, "%s", dir) >= (int)size)
                        return -ENAMETOOLONG;
                return 0;
        }
        r = mkdir_p(OCI_VM_DIR_BASE, 0700);
        if (r < 0)
                return r;
        snprintf(buf, size, OCI_VM_DIR_BASE "/%016" PRIx64, h);
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int oci_vm_write_pid(const char *dir, const oci_vm_t *vm) {
        char path[PATH_MAX], text[64];

        snprintf(path, sizeof(path), "%s/" OCI_VM_PID_FILE, dir);
        snprintf(text, sizeof(text), "%d %" PRIu64 "\n", (int)vm->qemu_pid, vm->qemu_start);
        return write_file_atomic(path, text, strlen(text), 0600);
}

void oci_vm_kill_orphan(const char *dir) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        uint64_t start;
        int pid;

        snprintf(path, sizeof(path), "%s/" OCI_VM_PID_FILE, dir);
        if (read_file(path, 64, &text, NULL) < 0 || sscanf(text, "%d %" SCNu64, &pid, &start) != 2 || pid <= 0)
                return;
        /* Not our child: killed, then reaped by whoever it was reparented to. The start time
         * guards against a pid reused since. */
        kill_one_unreaped(pid, start);
}

void oci_vm_kill(oci_vm_t *vm) {
        kill_one(vm->qemu_pid, vm->qemu_start);
        vm->qemu_pid = 0;
        for (size_t k = 0; k < vm->n_fs; k++) {
                /* virtiofsd ends by itself once QEMU is gone; SIGKILL covers a wedged one. */
                kill_one((pid_t)vm->fs_pid[k], vm->fs_start[k]);
                vm->fs_pid[k] = 0;
        }
        vm->n_fs = 0;
}

void oci_vm_done(oci_vm_t *vm) {
        oci_vm_kill(vm);
        for (size_t k = 0; k < vm->n_mounts; k++) {
                free(vm->mounts[k].destination);
                free(vm->mounts[k].file);
        }
        free(vm->mounts);
        *vm = (oci_vm_t){};
}

/* Read lines from QMP until one answers (return or error), skipping greeting and events. */
static int qmp_answer(int fd, char *buf, size_t size, size_t *len, uint64_t deadline, char **ret_error) {
        for (;;) {
                char *nl = memchr(buf, '\n', *len);
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now;
                ssize_t n;

                if (nl) {
                        json_t *o;
                        bool answer, error;
                        size_t line = (size_t)(nl - buf) + 1;

                        *nl = '\0';
                        o = json_loads(buf, 0, NULL);
                        answer = o && json_object_get(o, "return");
                        error = o && json_object_get(o, "error");
                        if (error)
                                error_set(ret_error, -EIO, "QMP: %s",
                                          json_string_value(json_object_get(json_object_get(o, "error"), "desc"))
                                                  ?: "error");
                        json_decref(o);
                        memmove(buf, buf + line, *len - line);
                        *len -= line;
                        if (answer)
                                return 0;
                        if (error)
                                return -EIO;
                        continue;
                }
                now = now_monotonic_ms();
                if (now >= deadline)
                        return error_set(ret_error, -ETIMEDOUT, "QMP: no answer");
                if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
                        return -errno;
                n = read(fd, buf + *len, size - 1 - *len);
                if (n == 0)
                        return error_set(ret_error, -ECONNRESET, "QMP: QEMU closed the connection");
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        return -errno;
                if (n > 0)
                        *len += (size_t)n;
                if (*len >= size - 1)
                        *len = 0; /* a line longer than we care for: not an answer */
        }
}

int oci_vm_qmp(const char *dir, const char *command, char **ret_error) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        uint64_t deadline = now_monotonic_ms() + QMP_TIMEOUT_MS;
        _cleanup_close_ int fd = -1, dfd = -1;
        char buf[8192], cmd[128];
        size_t len = 0;
        int r;

        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return error_set(ret_error, -errno, "%s: %m", dir);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" OCI_VM_QMP_SOCKET, dfd);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return error_set(ret_error, -errno, "QMP: cannot connect: %m");
        /* The greeting has no "return": wait for the capabilities' answer instead. */
        if (write(fd, "{\"execute\":\"qmp_capabilities\"}\n", 31) != 31)
                return error_set(ret_error, -EIO, "QMP: cannot write");
        r = qmp_answer(fd, buf, sizeof(buf), &len, deadline, ret_error);
        if (r < 0)
                return r;
        snprintf(cmd, sizeof(cmd), "{\"execute\":\"%s\"}\n", command);
        if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
                return error_set(ret_error, -EIO, "QMP: cannot write");
        return qmp_answer(fd, buf, sizeof(buf), &len, deadline, ret_error);
}
