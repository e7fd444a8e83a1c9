/* oci_state.c: a container on disk (--root/ID/state.json, written atomically) and the JSON `state`, `list` and `ps` print. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/oci/oci.h"

static const char *const status_names[_OCI_STATUS_MAX] = {
        [OCI_STATUS_CREATING] = "creating", [OCI_STATUS_CREATED] = "created", [OCI_STATUS_RUNNING] = "running",
        [OCI_STATUS_PAUSED] = "paused",     [OCI_STATUS_STOPPED] = "stopped",
};

const char *oci_status_name(oci_status_t s) { return s < _OCI_STATUS_MAX ? status_names[s] : "unknown"; }

int oci_status_from_name(const char *s) {
        for (int k = 0; k < _OCI_STATUS_MAX; k++)
                if (streq(s, status_names[k]))
                        return k;
        return -EINVAL;
}

/* runc's rule: a file name, not "." or "..", no '/'; we also keep it printable. */
bool oci_id_valid(const char *id) {
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n > OCI_ID_MAX || streq(id, ".") || streq(id, ".."))
                return false;
        for (size_t k = 0; k < n; k++)
                if (id[k] == '/' || (unsigned char)id[k] < 0x20 || id[k] == 0x7f)
                        return false;
        return true;
}

int oci_container_dir(const oci_ctx_t *ctx, const char *id, char *buf, size_t size) {
        if (!oci_id_valid(id))
                return -EINVAL;
        if (snprintf(buf, size, "%s/%s", ctx->root, id) >= (int)size)
                return -ENAMETOOLONG;
        return 0;
}

void oci_now_rfc3339(char *buf, size_t size) {
        struct timespec ts;
        struct tm tm;
        char sec[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, size, "%s.%09ldZ", sec, ts.tv_nsec);
}

int oci_pid_start_time(pid_t pid, uint64_t *ret) {
        _cleanup_free_ char *stat = NULL;
        char path[64];
        const char *p;
        int r;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        r = read_file(path, 4096, &stat, NULL);
        if (r < 0)
                return r == -ENOENT ? -ESRCH : r;
        /* The command name may hold spaces and ')': the fields start after the last ')'. */
        p = strrchr(stat, ')');
        if (!p)
                return -EIO;
        /* Field 3 (state) follows; start time is field 22. A zombie has exited: gone for us. */
        if (p[1] == ' ' && p[2] == 'Z')
                return -ESRCH;
        for (int field = 2; field < 22; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EIO;
        }
        if (sscanf(p + 1, "%" SCNu64, ret) != 1)
                return -EIO;
        return 0;
}

static bool holder_alive(const oci_state_t *s) {
        uint64_t start;

        return s->pid > 0 && oci_pid_start_time(s->pid, &start) == 0 && start == s->pid_start;
}

oci_status_t oci_state_status(const oci_state_t *s) {
        if (s->status == OCI_STATUS_STOPPED || !holder_alive(s))
                return OCI_STATUS_STOPPED;
        return s->status;
}

json_t *oci_state_json(const oci_state_t *s) {
        oci_status_t st = oci_state_status(s);

        return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "ociVersion", OCI_VERSION, "id", s->id, "pid",
                         (json_int_t)(st == OCI_STATUS_STOPPED ? 0 : s->pid), "status",
                         oci_status_name(st == OCI_STATUS_CREATING ? OCI_STATUS_CREATED : st), "bundle", s->bundle,
                         "rootfs", s->rootfs, "created", s->created, "owner", s->owner ?: "");
}

int oci_state_write(const char *dir, const oci_state_t *s) {
        _cleanup_free_ char *text = NULL;
        char path[4200];
        json_t *o;

        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i}", "id", s->id, "bundle", s->bundle, "rootfs",
                      s->rootfs, "created", s->created, "owner", s->owner ?: "", "status", oci_status_name(s->status),
                      "pid", (json_int_t)s->pid, "pid_start", (json_int_t)s->pid_start, "exit_status", s->exit_status);
        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        if (snprintf(path, sizeof(path), "%s/" OCI_STATE_FILE, dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        return write_file_atomic(path, text, strlen(text), 0600);
}

int oci_state_read(const char *dir, oci_state_t *ret) {
        _cleanup_free_ char *text = NULL;
        const char *id, *bundle, *rootfs, *created, *owner, *status;
        json_int_t pid, pid_start;
        char path[4200];
        oci_state_t s = {};
        int exit_status, r;
        json_t *o;

        *ret = (oci_state_t){};
        if (snprintf(path, sizeof(path), "%s/" OCI_STATE_FILE, dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        r = read_file(path, 1u << 20, &text, NULL);
        if (r < 0)
                return r;
        o = json_loads(text, 0, NULL);
        if (!o ||
            json_unpack(o, "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i}", "id", &id, "bundle", &bundle, "rootfs",
                        &rootfs, "created", &created, "owner", &owner, "status", &status, "pid", &pid, "pid_start",
                        &pid_start, "exit_status", &exit_status) < 0 ||
            (r = oci_status_from_name(status)) < 0 || pid < 0 || pid_start < 0) {
                json_decref(o);
                return -EBADMSG;
        }
        s = (oci_state_t){ .id = strdup(id),
                           .bundle = strdup(bundle),
                           .rootfs = strdup(rootfs),
                           .created = strdup(created),
                           .owner = strdup(owner),
                           .status = (oci_status_t)r,
                           .pid = (pid_t)pid,
                           .pid_start = (uint64_t)pid_start,
                           .exit_status = exit_status };
        json_decref(o);
        if (!s.id || !s.bundle || !s.rootfs || !s.created || !s.owner) {
                oci_state_done(&s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

void oci_state_done(oci_state_t *s) {
        free(s->id);
        free(s->bundle);
        free(s->rootfs);
        free(s->created);
        free(s->owner);
        *s = (oci_state_t){};
}

int oci_state_load(const oci_ctx_t *ctx, const char *id, char *dir, size_t dir_size, oci_state_t *ret) {
        int r;

        *ret = (oci_state_t){};
        r = oci_container_dir(ctx, id, dir, dir_size);
        if (r < 0)
                return r == -EINVAL ? -ENOENT : r;
        return oci_state_read(dir, ret);
}

char *oci_ps_json(const pid_t *pids, size_t n) {
        json_t *a = json_array();
        char *text;

        if (!a)
                return NULL;
        for (size_t k = 0; k < n; k++)
                if (json_array_append_new(a, json_integer(pids[k])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        text = json_dumps(a, JSON_COMPACT);
        json_decref(a);
        return text;
}
