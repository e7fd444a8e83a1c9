/* agent_workload.c: the kit-mode workload: mount the image, give it a writable overlay, switch into it, run it, report its exit. */
#include "services/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/mp.h"

#define IMAGE_DIR "/mnt/image" /* the virtio-fs export, read-only */
#define RW_DIR "/mnt/rw"       /* tmpfs: the overlay's upper and work dirs */
#define ROOT_DIR "/mnt/root"   /* the overlay: the workload's / */
#define SHARE_DIR "/mnt/share" /* a warm-pool clone's 9p export, the image one level down */
#define TAG_MAX 36             /* virtio-fs tags are at most 36 bytes */
#define SUBDIR_MAX 64
#define HOSTNAME_MAX 63
#define DISK_WAIT_MS 5000 /* for /dev/vda to appear */
#define DISK_PARTITIONS_MAX 16

int agent_exit_code(int wstatus) {
        if (WIFEXITED(wstatus))
                return WEXITSTATUS(wstatus);
        if (WIFSIGNALED(wstatus))
                return 128 + WTERMSIG(wstatus);
        return 255;
}

void agent_state_init(agent_state_t *s) {
        *s = (agent_state_t){ .console = STDERR_FILENO };
        agent_relay_init(&s->workload.out, -1, AGENT_CONSOLE_STDOUT, s->console);
        agent_relay_init(&s->workload.err, -1, AGENT_CONSOLE_STDERR, s->console);
}

int agent_base_env(const char *hostname, char ***ret) {
        _cleanup_(mp_strv_freep) char **env = calloc(1, sizeof(char *));
        char host[HOSTNAME_MAX + 16];

        if (!env)
                return -ENOMEM;
        snprintf(host, sizeof(host), "HOSTNAME=%s", hostname ?: "husk");
        if (mp_env_set(&env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") < 0 ||
            mp_env_set(&env, "HOME=/root") < 0 || mp_env_set(&env, host) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(env);
        return 0;
}

/* ---- the root file system ----------------------------------------------------------------- */

static int mkdir_mount(const char *what, const char *where, const char *type, unsigned long flags, const char *data) {
        if (mkdir(where, 0755) < 0 && errno != EEXIST)
                return -errno;
        if (mount(what, where, type, flags, data) < 0)
                return -errno;
        return 0;
}

/* The image read-only, an overlay with a tmpfs upper on top, the kernel file systems moved
 * in, and then that overlay becomes / (switch_root's MS_MOVE + chroot: pivot_root cannot
 * work from an initramfs). The agent keeps running inside it with its channel fd open. */
/* The disk's root file system, read-only: the whole disk's, else the first partition holding a
 * Linux file system, else the first holding vfat. A GPT image's EFI system partition (vfat) comes
 * first in its table but is no root: `boot: kit` on make image's image mounts its ext4 root,
 * partition 2. The kernel made the partitions' nodes with the disk's; it loads the file
 * system's module itself (through /sbin/modprobe). */
static int mount_disk(const char *dev, char *msg, size_t msg_size) {
        static const char *const types[2][3] = { { "ext4", "xfs", "btrfs" }, { "vfat" } };
        uint64_t deadline = now_monotonic_ms() + DISK_WAIT_MS;
        char nodes[1 + DISK_PARTITIONS_MAX][64];
        size_t n = 0;
        int r = -ENOENT;

        /* devtmpfs makes the node once virtio_blk probed the device. */
        while (access(dev, F_OK) < 0 && now_monotonic_ms() < deadline)
                nanosleep(&(struct timespec){ .tv_nsec = 2 * 1000 * 1000 }, NULL);
        snprintf(nodes[n++], sizeof(nodes[0]), "%s", dev);
        for (int p = 1; p <= DISK_PARTITIONS_MAX; p++) {
                snprintf(nodes[n], sizeof(nodes[0]), "%s%d", dev, p);
                if (access(nodes[n], F_OK) == 0)
                        n++;
        }
        if (mkdir(IMAGE_DIR, 0755) < 0 && errno != EEXIST)
                r = -errno;
        else
                for (size_t pass = 0; pass < ELEMENTSOF(types); pass++)
                        for (size_t k = 0; k < n; k++)
                                for (size_t t = 0; t < ELEMENTSOF(types[pass]) && types[pass][t]; t++) {
                                        if (mount(nodes[k], IMAGE_DIR, types[pass][t], MS_RDONLY | MS_NODEV, NULL) ==
                                            0) {
                                                if (k > 0)
                                                        log_agent_info("root file system: %s (%s)", nodes[k],
                                                                       types[pass][t]);
                                                return 0;
                                        }
                                        r = -errno;
                                }
        snprintf(msg, msg_size,
                 "cannot mount %s or any of its %zu partitions read-only as ext4, xfs, btrfs or vfat: %s", dev, n - 1,
                 strerror(-r));
        return r;
}

/* 9p: a template clone's image (its memory is a private copy, which vhost-user virtio-fs cannot
 * serve); read-only on both sides, cached as loosely as a share that never changes allows. A
 * writable one (husk-oci's bundle root, which the host sees) is not cached: every write reaches
 * the host at once, and what the host changes is seen. */
#define NINEP_OPTIONS "trans=virtio,version=9p2000.L,msize=524288,cache=loose"
#define NINEP_WRITABLE_OPTIONS "trans=virtio,version=9p2000.L,msize=524288,cache=mmap"

/* subdir: the image is that directory of the share, not its root. A warm-pool clone's QEMU
 * opened its export before anyone knew which image it would serve; the host binds the image
 * one level down when an instance takes the clone (vmm_pool.c). */
static int mount_image(const char *tag, bool ninep, const char *subdir, bool writable, char *msg, size_t msg_size) {
        unsigned long flags = (writable ? 0 : MS_RDONLY) | MS_NODEV;
        char lower[sizeof(SHARE_DIR) + 1 + SUBDIR_MAX + 1];
        int r;

        if (strncmp(tag, "/dev/", 5) == 0)
                return mount_disk(tag, msg, msg_size);
        r = mkdir_mount(tag, subdir ? SHARE_DIR : IMAGE_DIR, ninep ? "9p" : "virtiofs", flags,
                        !ninep     ? NULL
                        : writable ? NINEP_WRITABLE_OPTIONS
                                   : NINEP_OPTIONS);
        if (r < 0) {
                snprintf(msg, msg_size, "cannot mount %s tag %s: %s", ninep ? "9p" : "virtio-fs", tag, strerror(-r));
                return r;
        }
        if (!subdir)
                return 0;
        snprintf(lower, sizeof(lower), "%s/%s", SHARE_DIR, subdir);
        r = mkdir_mount(lower, IMAGE_DIR, NULL, MS_BIND, NULL);
        if (r >= 0 && !writable && mount(NULL, IMAGE_DIR, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NODEV, NULL) < 0)
                r = -errno;
        if (r < 0)
                snprintf(msg, msg_size, "cannot bind %s as the image: %s", lower, strerror(-r));
        return r;
}

/* One plain name: no '/', not "." or "..": it cannot leave the share. */
static bool subdir_valid(const char *s) { return *s && !strchr(s, '/') && !streq(s, ".") && !streq(s, ".."); }

/* writable (OCI: the bundle's rootfs is the container's own): the image itself is the root,
 * bound there without an overlay, so writes reach the host's directory. */
static int setup_root(bool bundle, bool writable, char *msg, size_t msg_size) {
        static const char *const moved[] = { "/dev", "/proc", "/sys", "/run" };
        char lower[64], options[256];
        int r;

        snprintf(lower, sizeof(lower), "%s%s", IMAGE_DIR, bundle ? "/rootfs" : "");
        if (writable) {
                r = mkdir_mount(lower, ROOT_DIR, NULL, MS_BIND | MS_REC, NULL);
                if (r < 0) {
                        snprintf(msg, msg_size, "cannot bind %s as the root: %s", lower, strerror(-r));
                        return r;
                }
                goto switch_root;
        }
        r = mkdir_mount("tmpfs", RW_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
        if (r >= 0 && ((mkdir(RW_DIR "/upper", 0755) < 0 && errno != EEXIST) ||
                       (mkdir(RW_DIR "/work", 0755) < 0 && errno != EEXIST)))
                r = -errno;
        if (r < 0) {
                snprintf(msg, msg_size, "cannot prepare the overlay's tmpfs: %s", strerror(-r));
                return r;
        }
        snprintf(options, sizeof(options), "lowerdir=%s,upperdir=" RW_DIR "/upper,workdir=" RW_DIR "/work", lower);
        r = mkdir_mount("overlay", ROOT_DIR, "overlay", 0, options);
        if (r < 0) {
                snprintf(msg, msg_size, "cannot mount the overlay on %s: %s", lower, strerror(-r));
                return r;
        }
switch_root:
        for (size_t k = 0; k < ELEMENTSOF(moved); k++) {
                char target[64];

                snprintf(target, sizeof(target), ROOT_DIR "%s", moved[k]);
                if (mkdir(target, 0755) < 0 && errno != EEXIST) {
                        log_agent_warning_errno(errno, "Failed to create %s, ignoring: %m", target);
                        continue;
                }
                if (mount(moved[k], target, NULL, MS_MOVE, NULL) < 0)
                        log_agent_warning_errno(errno, "Failed to move %s into the root, ignoring: %m", moved[k]);
        }
        if (chdir(ROOT_DIR) < 0 || mount(ROOT_DIR, "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) {
                r = -errno;
                snprintf(msg, msg_size, "cannot switch into the root file system: %s", strerror(-r));
                return r;
        }
        /* Programs expect a writable /tmp. A writable root is the container's own, as it is on
         * the host: left as it is (runc does not touch it either). */
        if (!writable) {
                (void)mkdir("/tmp", 01777);
                (void)chmod("/tmp", 01777);
        }
        return 0;
}

static int read_bundle(agent_state_t *s, agent_bundle_t *b, char *msg, size_t msg_size) {
        _cleanup_free_ char *text = NULL, *error = NULL;
        char path[256];
        int r;

        snprintf(path, sizeof(path), "%s/config.json", s->image_dir ?: IMAGE_DIR);
        r = read_file(path, AGENT_BUNDLE_CONFIG_MAX, &text, NULL);
        if (r < 0) {
                snprintf(msg, msg_size, "cannot read the bundle's config.json: %s", strerror(-r));
                return r;
        }
        r = agent_bundle_parse(text, b, &error);
        if (r < 0)
                snprintf(msg, msg_size, "%s", error ?: strerror(-r));
        return r;
}

void agent_workload_start(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        agent_workload_t *w = &s->workload;
        _cleanup_free_ char *mode = NULL, *tag = NULL, *hostname = NULL, *kind = NULL, *fs = NULL, *subdir = NULL;
        _cleanup_(mp_strv_freep) char **command = NULL, **env = NULL, **wenv = NULL;
        _cleanup_(agent_bundle_clear) agent_bundle_t b = {};
        bool writable = false;
        agent_mount_t *mounts = NULL;
        size_t n_mounts = 0;
        char **argv;
        const char *cwd = "/";
        int out[2] = { -1, -1 }, err[2] = { -1, -1 };
        char msg[512];
        size_t n_pack;
        int r;

        if (s->no_workload)
                return agent_pack_error(pk, &id, "invalid",
                                        "husk-agent runs as a daemon in this image (disk mode): "
                                        "the image's own init runs its workload");
        if (w->started)
                return agent_pack_error(pk, &id, "conflict", "the workload was started already");
        if (mp_get_str(req, "mode", 16, &mode) < 0 ||
            (!streq(mode, "rootfs") && !streq(mode, "bundle") && !streq(mode, "disk")))
                return agent_pack_error(pk, &id, "invalid", "mode: must be \"rootfs\", \"bundle\" or \"disk\"");
        r = mp_get_str(req, "tag", TAG_MAX, &tag);
        if ((r < 0 && r != -ENOENT) || (tag && streq(mode, "disk") != (strncmp(tag, "/dev/vd", 7) == 0)))
                return agent_pack_error(pk, &id, "invalid",
                                        "tag: a virtio-fs tag of at most 36 bytes, or /dev/vdX for mode disk");
        r = mp_get_str(req, "fs", 16, &fs);
        if ((r < 0 && r != -ENOENT) || (fs && !streq(fs, "virtiofs") && !streq(fs, "9p")))
                return agent_pack_error(pk, &id, "invalid", "fs: must be \"virtiofs\" or \"9p\"");
        r = mp_get_str(req, "subdir", SUBDIR_MAX, &subdir);
        if ((r < 0 && r != -ENOENT) || (subdir && (!subdir_valid(subdir) || !fs || !streq(fs, "9p"))))
                return agent_pack_error(pk, &id, "invalid",
                                        "subdir: a directory name of the 9p share (no '/', not . or ..), with fs 9p");
        r = mp_get_str(req, "hostname", HOSTNAME_MAX, &hostname);
        if ((r < 0 && r != -ENOENT) || (hostname && !agent_hostname_valid(hostname)))
                return agent_pack_error(pk, &id, "invalid", "hostname: must be a hostname");
        r = mp_get_str(req, "kind", 16, &kind);
        if (r < 0 && r != -ENOENT)
                return agent_pack_error(pk, &id, "invalid", "kind: must be a str");
        r = mp_get_strv(req, "command", &command);
        if (r < 0 && r != -ENOENT)
                return agent_pack_error(pk, &id, "invalid", "command: must be an array of at most 1024 str");
        r = mp_get_env(req, "env", &env);
        if (r < 0 && r != -ENOENT)
                return agent_pack_error(pk, &id, "invalid", "env: must be a map of names to str");
        r = mp_get_bool(req, "writable", &writable);
        if (r < 0 && r != -ENOENT)
                return agent_pack_error(pk, &id, "invalid", "writable: must be a bool");
        if (writable && streq(mode, "disk"))
                return agent_pack_error(pk, &id, "invalid", "writable: not for mode disk (its disk is read-only)");
        if (agent_mounts_parse(req, &mounts, &n_mounts) < 0)
                return agent_pack_error(pk, &id, "invalid",
                                        "mounts: must be at most 16 {tag, destination (absolute, not /), readonly, "
                                        "file?}");

        /* From here on a failure leaves the VM without its workload: the host hears why, and
         * the same start cannot be retried half-done. */
        w->started = true;
        /* config.json is read from the image before the switch hides it. */
        if ((!s->no_switch_root &&
             mount_image(tag ?: "rootfs", fs && streq(fs, "9p"), subdir, writable, msg, sizeof(msg)) < 0) ||
            (streq(mode, "bundle") && read_bundle(s, &b, msg, sizeof(msg)) < 0) ||
            (!s->no_switch_root && setup_root(streq(mode, "bundle"), writable, msg, sizeof(msg)) < 0) ||
            (!s->no_switch_root && agent_mounts_apply(mounts, n_mounts, fs && streq(fs, "9p"), msg, sizeof(msg)) < 0)) {
                agent_mounts_free(mounts, n_mounts);
                log_agent_error("%s", msg);
                /* As a shell reports a command it cannot run: a job fails instead of hanging. */
                w->exited = true;
                w->status = 126;
                w->exited_at_ms = now_monotonic_ms();
                return agent_pack_error(pk, &id, "failed", msg);
        }
        agent_mounts_free(mounts, n_mounts);
        if (hostname && sethostname(hostname, strlen(hostname)) < 0)
                log_agent_warning_errno(errno, "Failed to set the hostname to %s, ignoring: %m", hostname);
        if (s->net.configured && agent_net_write_resolv_conf(&s->net) < 0)
                log_agent_warning("Failed to write /etc/resolv.conf, ignoring");

        /* The environment: ours, then the bundle's, then the deployment's environment:. */
        if (agent_base_env(hostname, &wenv) < 0)
                return agent_pack_error(pk, &id, "failed", "out of memory");
        for (size_t k = 0; b.env && b.env[k]; k++)
                if (strchr(b.env[k], '=') && mp_env_set(&wenv, b.env[k]) < 0)
                        return agent_pack_error(pk, &id, "failed", "out of memory");
        for (size_t k = 0; env && env[k]; k++)
                if (mp_env_set(&wenv, env[k]) < 0)
                        return agent_pack_error(pk, &id, "failed", "out of memory");
        if (b.cwd)
                cwd = b.cwd;
        w->cwd = strdup(cwd);
        w->kind = kind ? TAKE_PTR(kind) : strdup("worker");
        w->env = TAKE_PTR(wenv);

        argv = command && command[0] ? command : b.args && b.args[0] ? b.args : NULL;
        n_pack = 3 + (b.ignored && b.ignored[0] ? 1 : 0);
        if (!argv) {
                /* Nothing to run: the VM serves exec until it is stopped. */
                log_agent_info("root file system ready (%s), no command to run", mode);
                msgpack_pack_map(pk, n_pack);
                mp_pack_kv_str(pk, "type", "start");
                mp_pack_kv_u64(pk, "id", id);
                mp_pack_kv_u64(pk, "pid", 0);
                if (n_pack > 3)
                        mp_pack_kv_strv(pk, "ignored", b.ignored);
                return;
        }

        if (pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(err, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                snprintf(msg, sizeof(msg), "cannot create pipes: %s", strerror(errno));
                goto fail;
        }
        r = agent_spawn(argv, w->env, w->cwd, -1, out[1], err[1], &w->pid);
        close(out[1]);
        close(err[1]);
        out[1] = err[1] = -1;
        if (r < 0) {
                snprintf(msg, sizeof(msg), "cannot run %s: %s", argv[0], strerror(-r));
                goto fail;
        }
        agent_relay_init(&w->out, out[0], AGENT_CONSOLE_STDOUT, s->console);
        agent_relay_init(&w->err, err[0], AGENT_CONSOLE_STDERR, s->console);
        log_agent_info("workload started: %s (pid %d, %s)", argv[0], (int)w->pid, w->kind);
        msgpack_pack_map(pk, n_pack);
        mp_pack_kv_str(pk, "type", "start");
        mp_pack_kv_u64(pk, "id", id);
        mp_pack_kv_u64(pk, "pid", (uint64_t)w->pid);
        if (n_pack > 3)
                mp_pack_kv_strv(pk, "ignored", b.ignored);
        return;

fail:
        for (int k = 0; k < 2; k++) {
                if (out[k] >= 0)
                        close(out[k]);
                if (err[k] >= 0)
                        close(err[k]);
        }
        log_agent_error("%s", msg);
        /* A workload that cannot start is a workload that failed: 127 as a shell says it. */
        w->exited = true;
        w->status = r == -ENOENT ? 127 : 126;
        w->exited_at_ms = now_monotonic_ms();
        agent_relay_init(&w->out, -1, AGENT_CONSOLE_STDOUT, s->console);
        agent_relay_init(&w->err, -1, AGENT_CONSOLE_STDERR, s->console);
        agent_pack_error(pk, &id, "failed", msg);
}

void agent_workload_signal(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        agent_workload_t *w = &s->workload;
        uint64_t sig;

        if (mp_get_u64(req, "signal", &sig) < 0 || sig == 0 || sig >= (uint64_t)NSIG)
                return agent_pack_error(pk, &id, "invalid", "signal: must be a signal number");
        if (w->pid <= 0 || w->exited)
                return agent_pack_error(pk, &id, "conflict", "no workload is running");
        /* Its whole session: a shell's children too. */
        if (kill(-w->pid, (int)sig) < 0 && kill(w->pid, (int)sig) < 0) {
                char msg[128];
                snprintf(msg, sizeof(msg), "kill: %s", strerror(errno));
                return agent_pack_error(pk, &id, "failed", msg);
        }
        msgpack_pack_map(pk, 2);
        mp_pack_kv_str(pk, "type", "signal");
        mp_pack_kv_u64(pk, "id", id);
}

void agent_workload_status(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        const agent_workload_t *w = &s->workload;
        const char *state = w->exited ? "exited" : w->pid > 0 ? "running" : "none";

        msgpack_pack_map(pk, w->exited ? 6 : 5);
        mp_pack_kv_str(pk, "type", "status");
        mp_pack_kv_u64(pk, "id", id);
        mp_pack_kv_str(pk, "state", state);
        mp_pack_kv_i64(pk, "pid", w->pid);
        mp_pack_kv_bool(pk, "started", w->started);
        if (w->exited)
                mp_pack_kv_i64(pk, "exit_status", w->status);
}
