/* agent_volumes.c: the deployment's volumes in kit mode: each virtio-fs tag mounted at its destination inside the workload's root before it starts. */
#include "services/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/mp.h"

#define MOUNTS_MAX 16                        /* VOLUMES_MAX */
#define TAG_MAX 36                           /* virtio-fs tags are at most 36 bytes */
#define VOLUME_STAGE_DIR "/run/husk-volumes" /* a share that holds one file is mounted here first */

void agent_mounts_free(agent_mount_t *m, size_t n) {
        for (size_t k = 0; m && k < n; k++) {
                free(m[k].tag);
                free(m[k].destination);
                free(m[k].file);
        }
        free(m);
}

static bool path_clean(const char *p) {
        if (!p || p[0] != '/' || streq(p, "/"))
                return false;
        for (const char *q = p; q; q = strchr(q + 1, '/'))
                if (q[1] == '.' && q[2] == '.' && (q[3] == '/' || q[3] == '\0'))
                        return false;
        return true;
}

/* The start frame's optional mounts: [{tag, destination, readonly, file?}]. */
int agent_mounts_parse(const msgpack_object *req, agent_mount_t **ret, size_t *ret_n) {
        const msgpack_object *o = mp_map_get(req, "mounts");
        agent_mount_t *m;
        size_t n;

        *ret = NULL;
        *ret_n = 0;
        if (!o || o->type == MSGPACK_OBJECT_NIL)
                return 0;
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > MOUNTS_MAX)
                return -EBADMSG;
        n = o->via.array.size;
        if (n == 0)
                return 0;
        m = calloc(n, sizeof(*m));
        if (!m)
                return -ENOMEM;
        for (size_t k = 0; k < n; k++) {
                const msgpack_object *e = &o->via.array.ptr[k];
                int r;

                if (e->type != MSGPACK_OBJECT_MAP || mp_get_str(e, "tag", TAG_MAX, &m[k].tag) < 0 ||
                    strchr(m[k].tag, '/') || mp_get_str(e, "destination", 4096, &m[k].destination) < 0 ||
                    !path_clean(m[k].destination) || mp_get_bool(e, "readonly", &m[k].readonly) < 0)
                        goto malformed;
                r = mp_get_str(e, "file", 255, &m[k].file);
                if ((r < 0 && r != -ENOENT) ||
                    (m[k].file && (strchr(m[k].file, '/') || streq(m[k].file, "..") || streq(m[k].file, "."))))
                        goto malformed;
        }
        *ret = m;
        *ret_n = n;
        return 0;
malformed:
        agent_mounts_free(m, n);
        return -EBADMSG;
}

/* The parent directories of path, as mkdir -p makes them. */
static int mkdir_parents(const char *path) {
        char parent[4096];
        char *slash;

        snprintf(parent, sizeof(parent), "%s", path);
        slash = strrchr(parent, '/');
        if (!slash || slash == parent)
                return 0;
        *slash = '\0';
        return mkdir_p(parent, 0755);
}

/* 9p: a template clone's volumes (its memory is a private copy, which vhost-user virtio-fs cannot
 * serve). Uncached: the host and other VMs may change a volume under the guest. */
#define NINEP_VOLUME_OPTIONS "trans=virtio,version=9p2000.L,msize=524288"

/* Inside the workload's root, before it starts: each share at its destination. A read-only one
 * is mounted read-only here too (its virtiofsd, or QEMU's 9p, exports it read-only on the host as
 * well). */
int agent_mounts_apply(const agent_mount_t *m, size_t n, bool ninep, char *msg, size_t msg_size) {
        const char *type = ninep ? "9p" : "virtiofs", *options = ninep ? NINEP_VOLUME_OPTIONS : NULL;

        for (size_t k = 0; k < n; k++) {
                unsigned long flags = MS_NODEV | MS_NOSUID | (m[k].readonly ? MS_RDONLY : 0);
                char stage[128], file[512];
                int r, fd;

                if (!m[k].file) {
                        r = mkdir_p(m[k].destination, 0755);
                        if (r >= 0 && mount(m[k].tag, m[k].destination, type, flags, options) < 0)
                                r = -errno;
                        if (r < 0) {
                                snprintf(msg, msg_size, "cannot mount volume %s on %s: %s", m[k].tag, m[k].destination,
                                         strerror(-r));
                                return r;
                        }
                        continue;
                }
                snprintf(stage, sizeof(stage), VOLUME_STAGE_DIR "/%s", m[k].tag);
                snprintf(file, sizeof(file), "%s/%s", stage, m[k].file);
                r = mkdir_p(stage, 0700);
                if (r >= 0 && mount(m[k].tag, stage, type, flags, options) < 0)
                        r = -errno;
                if (r >= 0)
                        r = mkdir_parents(m[k].destination);
                /* A bind mount needs a file to cover. */
                if (r >= 0 && (fd = open(m[k].destination, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) >= 0)
                        close(fd);
                if (r >= 0 && mount(file, m[k].destination, NULL, MS_BIND, NULL) < 0)
                        r = -errno;
                if (r >= 0 && m[k].readonly &&
                    mount(NULL, m[k].destination, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, NULL) < 0)
                        r = -errno;
                if (r < 0) {
                        snprintf(msg, msg_size, "cannot mount file %s of volume %s on %s: %s", m[k].file, m[k].tag,
                                 m[k].destination, strerror(-r));
                        return r;
                }
        }
        return 0;
}
