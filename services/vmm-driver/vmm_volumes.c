/* vmm_volumes.c: an instance's volumes on the host side: their checks, the config and secret files, and what each virtiofsd exports. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm.h"

static bool has_files(const volume_spec_t *v) { return v->type == VOLUME_CONFIG || v->type == VOLUME_SECRET; }

int vmm_volumes_check(instance_spec_t *s, char **ret_error) {
        for (size_t k = 0; k < s->n_volumes; k++) {
                volume_spec_t *v = &s->volumes[k];
                struct stat st;
                char *resolved;
                int r;

                for (size_t j = 0; j < k; j++) {
                        if (streq(s->volumes[j].tag, v->tag))
                                return error_set(ret_error, -EINVAL, "volumes[%zu].tag: %s is used by volumes[%zu] too",
                                                 k, v->tag, j);
                        if (streq(s->volumes[j].destination, v->destination))
                                return error_set(ret_error, -EINVAL,
                                                 "volumes[%zu].destination: %s is the destination of volumes[%zu] too",
                                                 k, v->destination, j);
                }
                if (has_files(v))
                        continue;
                if (strchr(v->source, ','))
                        return error_set(ret_error, -EINVAL,
                                         "volumes[%zu].source: must not contain ',' (virtiofsd option syntax)", k);
                /* A named volume is made on first use; a bind source is the user's and must be there. */
                if (v->type == VOLUME_NAMED && (r = mkdir_p(v->source, 0755)) < 0)
                        return error_set(ret_error, -EINVAL, "volumes[%zu].source: cannot create %s: %s", k, v->source,
                                         strerror(-r));
                if (stat(v->source, &st) < 0)
                        return error_set(ret_error, -EINVAL, "volumes[%zu].source: %s: %m", k, v->source);
                if (!S_ISDIR(st.st_mode))
                        return error_set(ret_error, -EINVAL, "volumes[%zu].source: %s is not a directory", k,
                                         v->source);
                /* Resolved once, here, as the image is: virtiofsd refuses a symlink as its source, and
                 * the VM keeps the directory it was given if the link changes later. */
                resolved = realpath(v->source, NULL);
                if (!resolved)
                        return error_set(ret_error, -EINVAL, "volumes[%zu].source: %s: %m", k, v->source);
                if (strchr(resolved, ',')) {
                        r = error_set(
                                ret_error, -EINVAL,
                                "volumes[%zu].source: %s resolves to %s, which contains ',' (virtiofsd option syntax)",
                                k, v->source, resolved);
                        free(resolved);
                        return r;
                }
                free(v->source);
                v->source = resolved;
        }
        return 0;
}

void vmm_volume_socket(const volume_spec_t *v, char *buf, size_t size) { snprintf(buf, size, "%s.sock", v->tag); }

/* <files_dir>/<instance id>: the instance's tmpfs of config and secret files. */
static int instance_files_dir(vmm_t *d, const instance_spec_t *s, char *buf, size_t size) {
        if (!d->files_dir || !instance_id_valid(s->instance_id) ||
            snprintf(buf, size, "%s/%s", d->files_dir, s->instance_id) >= (int)size)
                return -EINVAL;
        return 0;
}

/* The instance's tmpfs, mounted once (by the first config or secret volume): memory only, even
 * when the runtime dir is on a disk; mode 0700, no device, no exec. */
static int files_tmpfs(vmm_t *d, const instance_spec_t *s, char *root, size_t size) {
        size_t bytes = 1u << 20;
        char opts[64];
        struct stat st, parent;
        int r;

        r = instance_files_dir(d, s, root, size);
        if (r < 0)
                return r;
        if (stat(root, &st) == 0 && stat(d->files_dir, &parent) == 0 && st.st_dev != parent.st_dev)
                return 0; /* mounted by an earlier volume of this instance */
        r = mkdir_p(root, 0700);
        if (r < 0)
                return r;
        for (size_t k = 0; k < s->n_volumes; k++)
                for (size_t j = 0; j < s->volumes[k].n_files; j++)
                        bytes += s->volumes[k].files[j].size + 4096;
        snprintf(opts, sizeof(opts), "mode=0700,size=%zu", bytes);
        if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
                return -errno;
        return 0;
}

static int write_files(vmm_t *d, const instance_spec_t *s, const volume_spec_t *v, char *path, size_t size) {
        char root[PATH_MAX];
        int r;

        r = files_tmpfs(d, s, root, sizeof(root));
        if (r < 0)
                return r;
        if (snprintf(path, size, "%s/%s", root, v->tag) >= (int)size)
                return -ENAMETOOLONG;
        if (mkdir(path, 0755) < 0)
                return -errno;
        for (size_t k = 0; k < v->n_files; k++) {
                char file[PATH_MAX];

                if (snprintf(file, sizeof(file), "%s/%s", path, v->files[k].name) >= (int)sizeof(file))
                        return -ENAMETOOLONG;
                r = write_file_atomic(file, v->files[k].data, v->files[k].size, v->files[k].mode & 0777);
                if (r < 0)
                        return r;
                /* open() took the umask off. */
                if (chmod(file, v->files[k].mode & 07777) < 0)
                        return -errno;
        }
        return 0;
}

int vmm_volume_export(vmm_t *d, const char *dir, instance_record_t *rec, size_t k, char *socket, size_t socket_size,
                      char *log, size_t log_size, char *files_dir, size_t files_dir_size, vmm_fs_export_t *ret,
                      char **ret_error) {
        const volume_spec_t *v = &rec->inst.spec.volumes[k];
        int r;

        *ret_error = NULL;
        vmm_volume_socket(v, socket, socket_size);
        vmm_fs_volume_log(v->tag, log, log_size);
        if (has_files(v)) {
                r = write_files(d, &rec->inst.spec, v, files_dir, files_dir_size);
                if (r < 0)
                        return error_set(ret_error, r, "volumes[%zu]: cannot write its files: %s", k, strerror(-r));
        }
        *ret = (vmm_fs_export_t){ .socket = socket,
                                  .log = log,
                                  .source = has_files(v) ? files_dir : v->source,
                                  .readonly = v->readonly || has_files(v),
                                  .ret_pid = &rec->volume_fs[k].pid,
                                  .ret_start_time = &rec->volume_fs[k].start_time };
        return 0;
}

/* The one file of a config or secret volume whose destination names it: bound onto the
 * destination itself (Ring's `destination: /etc/nginx/nginx.conf`). NULL: mount the directory. */
const char *vmm_volume_single_file(const volume_spec_t *v) {
        const char *base = strrchr(v->destination, '/');

        if (!has_files(v) || v->n_files != 1 || !base)
                return NULL;
        return streq(base + 1, v->files[0].name) ? v->files[0].name : NULL;
}

void vmm_volumes_remove_files(vmm_t *d, const instance_spec_t *s) {
        char root[PATH_MAX];
        bool any = false;
        int r;

        for (size_t k = 0; k < s->n_volumes; k++)
                any = any || has_files(&s->volumes[k]);
        if (!any || instance_files_dir(d, s, root, sizeof(root)) < 0)
                return;
        /* Lazily: a virtiofsd on its way out may still hold it; its pages go with the last user. */
        if (umount2(root, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                log_warning_errno(errno, "Failed to unmount %s, ignoring: %m", root);
        r = rm_rf(root);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Failed to remove %s, ignoring: %m", root);
}
