/* oci_template.c: husk-oci's VM templates: find or make the template of a boot profile in --template DIR, and restore a container's VM from it. vmm-driver's template operations do the QEMU part (vmm_qemu_template_ops). */
#include "cli/oci/oci_template.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/oci/oci.h"

#define RESTORE_TIMEOUT_MS 60000
#define LOCK_FILE ".lock" /* flock'd while a template is made: one husk-oci makes it, the others wait */

/* A template in dir made from description: its files, and the description it was made from
 * (the key is its hash: the text itself rules out a collision). */
static bool complete(const char *dir, const char *description) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_INFO, dir);
        if (read_file(path, 64 * 1024, &text, NULL) < 0 || !streq(text, description))
                return false;
        snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_MEMORY, dir);
        if (access(path, R_OK) < 0)
                return false;
        snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_STATE, dir);
        return access(path, R_OK) == 0;
}

/* Boot the template in a directory of its own beside final, save it, then rename it into place:
 * a template directory is complete or absent. */
static int make(const oci_clone_t *c, const char *template_dir, const char *final, const char *key,
                const char *description, char **ret_error) {
        char tmp[PATH_MAX], info[PATH_MAX + 32];
        pid_t pid = 0;
        int r;

        snprintf(tmp, sizeof(tmp), "%s/.make-%s-%d", template_dir, key, (int)getpid());
        (void)rm_rf(tmp);
        r = mkdir_p(tmp, 0700);
        if (r < 0)
                return error_set(ret_error, r, "cannot create %s: %s", tmp, strerror(-r));
        oci_debug("template %s: making it in %s", key, tmp);
        r = vmm_qemu_template_ops.make(c->qemu, &c->profile, tmp, &pid, ret_error);
        if (r >= 0) {
                snprintf(info, sizeof(info), "%s/" VMM_TEMPLATE_INFO, tmp);
                r = write_file_atomic(info, description, strlen(description), 0600);
                if (r < 0)
                        (void)error_set(ret_error, r, "cannot write %s: %s", info, strerror(-r));
        }
        if (r >= 0 && rename(tmp, final) < 0)
                r = error_set(ret_error, -errno, "cannot rename %s to %s: %m", tmp, final);
        if (r < 0)
                (void)rm_rf(tmp);
        return r;
}

/* The template's directory for c, made first if needed, into *ret (the caller's). */
static int find_or_make(const char *template_dir, const oci_clone_t *c, char **ret, char **ret_error) {
        _cleanup_free_ char *description = NULL, *final = NULL;
        _cleanup_close_ int lock = -1;
        char key[VMM_TEMPLATE_KEY_LEN + 1], path[PATH_MAX];
        int r;

        r = vmm_qemu_template_ops.describe(c->qemu, &c->profile, &description);
        if (r < 0)
                return error_set(ret_error, r, "cannot describe the VM's profile: %s", strerror(-r));
        snprintf(key, sizeof(key), "%016" PRIx64, fnv1a_64(description, strlen(description)));
        if (asprintf(&final, "%s/%s", template_dir, key) < 0)
                return -ENOMEM;
        if (complete(final, description)) {
                *ret = TAKE_PTR(final);
                return 0;
        }
        r = mkdir_p(template_dir, 0700);
        if (r < 0)
                return error_set(ret_error, r, "--template %s: %s", template_dir, strerror(-r));
        snprintf(path, sizeof(path), "%s/" LOCK_FILE, template_dir);
        lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock < 0 || flock(lock, LOCK_EX) < 0)
                return error_set(ret_error, -errno, "cannot lock %s: %m", path);
        /* Made by another husk-oci while we waited for the lock? */
        if (!complete(final, description)) {
                (void)rm_rf(final); /* what is there is not a complete template of this profile */
                r = make(c, template_dir, final, key, description, ret_error);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(final);
        return 0;
}

int oci_template_start(const char *template_dir, const oci_clone_t *c, const char *dir, pid_t *ret_pid,
                       char **ret_error) {
        _cleanup_(vmm_strv_freep) char **argv = NULL;
        _cleanup_free_ char *tdir = NULL, *memory = NULL;
        vmm_qemu_params_t params;
        pid_t pid;
        int r;

        r = find_or_make(template_dir, c, &tdir, ret_error);
        if (r < 0)
                return r;
        if (asprintf(&memory, "%s/" VMM_TEMPLATE_MEMORY, tdir) < 0)
                return -ENOMEM;
        if (strchr(memory, ',') || strchr(c->rootfs, ','))
                return error_set(ret_error, -EINVAL, "%s or %s holds a ',' (QEMU's option syntax)", memory, c->rootfs);
        r = vmm_qemu_template_params(c->qemu, &c->profile, &params);
        if (r < 0)
                return error_set(ret_error, r, "QEMU not found");
        params.memory_file = memory;
        params.clone = true;
        params.net = c->profile.net ? c->net : NULL;
        params.ninep_export = c->rootfs;
        params.ninep_export_writable = c->rootfs_writable;
        params.ninep_volumes = c->volumes;
        r = vmm_qemu_argv(&params, &argv);
        if (r < 0)
                return error_set(ret_error, r, "cannot build the clone's command line: %s", strerror(-r));
        r = vmm_spawn(dir, argv, VMM_QEMU_LOG, &pid);
        if (r < 0)
                return error_set(ret_error, r, "cannot start %s: %s", argv[0], strerror(-r));
        r = vmm_qemu_template_ops.restore(dir, tdir, true, RESTORE_TIMEOUT_MS, ret_error);
        if (r < 0) {
                kill(pid, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                /* Damaged, or made by another QEMU: the next container makes it again. */
                (void)rm_rf(tdir);
                return r;
        }
        oci_debug("VM restored from template %s (QEMU pid %d)", tdir, (int)pid);
        *ret_pid = pid;
        return 0;
}
