/* instance_record.c: JSON codec of instance.json. It holds every field of the instance spec: the
 * scheduler compares an adopted instance's spec with its deployment, and a field lost here
 * replaces a running VM after a vmm-driver restart. */
#include "proto/instance_record.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/util.h"

#define FILE_NAME_MAX 255

bool instance_state_valid(const char *state) {
        static const char *const states[] = {
                INSTANCE_STATE_STARTING, INSTANCE_STATE_RUNNING, INSTANCE_STATE_READY,
                INSTANCE_STATE_STOPPING, INSTANCE_STATE_EXITED,
        };

        for (size_t k = 0; state && k < ELEMENTSOF(states); k++)
                if (streq(state, states[k]))
                        return true;
        return false;
}

void instance_record_clear(instance_record_t *r) {
        if (!r)
                return;
        instance_clear(&r->inst);
        free(r->shutdown_reason);
        free(r->console_log);
        free(r->workload_mode);
        free(r->image_path);
        *r = (instance_record_t){};
}

/* A name in the instance directory, never a path out of it. */
static bool file_name_valid(const char *s) {
        return s && *s && strlen(s) <= FILE_NAME_MAX && !strchr(s, '/') && !streq(s, ".") && !streq(s, "..");
}

/* ---- encode --------------------------------------------------------------------------------- */

static int set_str(json_t *o, const char *key, const char *v) {
        return json_object_set_new(o, key, v ? json_string(v) : json_null());
}

static int set_int(json_t *o, const char *key, json_int_t v) { return json_object_set_new(o, key, json_integer(v)); }

/* NULL on ENOMEM, which json_object_set_new() then reports. */
static json_t *strv_json(char *const *v) {
        json_t *a = json_array();

        for (size_t k = 0; a && v[k]; k++)
                if (json_array_append_new(a, json_string(v[k])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

int instance_record_to_json(const instance_record_t *r, char **ret) {
        const instance_t *i = &r->inst;
        json_t *o;
        char *text;
        int q = 0;

        /* JSON integers are signed 64-bit: the u64 times and counters fit for any real value. */
        if (i->spec.generation > INT64_MAX || i->started_at > INT64_MAX || i->ready_at > INT64_MAX ||
            i->exited_at > INT64_MAX || r->pid_start_time > INT64_MAX || r->stop_requested_at > INT64_MAX ||
            r->fs_pid_start_time > INT64_MAX || i->spawned_at_ns > INT64_MAX || i->ready_at_ns > INT64_MAX)
                return -ERANGE;
        if (r->console_log && !file_name_valid(r->console_log))
                return -EINVAL;

        o = json_object();
        if (!o)
                return -ENOMEM;
        q |= set_str(o, "instance_id", i->spec.instance_id);
        q |= set_str(o, "deployment_id", i->spec.deployment_id);
        q |= set_int(o, "generation", (json_int_t)i->spec.generation);
        q |= set_str(o, "runtime", i->spec.runtime);
        q |= set_str(o, "image", i->spec.image);
        q |= set_str(o, "kernel", i->spec.kernel);
        q |= set_str(o, "initrd", i->spec.initrd);
        if (i->spec.boot)
                q |= set_str(o, "boot", i->spec.boot);
        q |= set_int(o, "cpus", i->spec.cpus);
        q |= set_int(o, "memory_mib", i->spec.memory_mib);
        q |= set_str(o, "state", i->state);
        q |= set_int(o, "pid", i->pid);
        q |= set_int(o, "pid_start_time", (json_int_t)r->pid_start_time);
        q |= set_int(o, "started_at", (json_int_t)i->started_at);
        q |= set_int(o, "ready_at", (json_int_t)i->ready_at);
        q |= set_int(o, "exited_at", (json_int_t)i->exited_at);
        if (i->spawned_at_ns)
                q |= set_int(o, "spawned_at_ns", (json_int_t)i->spawned_at_ns);
        if (i->ready_at_ns)
                q |= set_int(o, "ready_at_ns", (json_int_t)i->ready_at_ns);
        q |= set_str(o, "exit_reason", i->exit_reason);
        q |= set_str(o, "exit_message", i->exit_message);
        q |= set_int(o, "exit_status", i->exit_status);
        q |= set_int(o, "stop_requested_at", (json_int_t)r->stop_requested_at);
        q |= json_object_set_new(o, "remove_on_exit", json_boolean(r->remove_on_exit));
        q |= set_str(o, "shutdown_reason", r->shutdown_reason);
        q |= set_str(o, "kind", i->spec.kind);
        q |= set_str(o, "address", i->address);
        if (i->spec.command)
                q |= json_object_set_new(o, "command", strv_json(i->spec.command));
        if (i->spec.environment)
                q |= json_object_set_new(o, "environment", strv_json(i->spec.environment));
        if (i->spec.n_ports > 0)
                q |= json_object_set_new(o, "ports", ports_to_json(i->spec.ports, i->spec.n_ports));
        if (i->spec.n_volumes > 0) {
                json_t *fs = json_array();

                q |= json_object_set_new(o, "volumes", volumes_to_json(i->spec.volumes, i->spec.n_volumes));
                for (size_t k = 0; fs && k < i->spec.n_volumes && k < VOLUMES_MAX; k++)
                        if (r->volume_fs[k].start_time > INT64_MAX ||
                            json_array_append_new(fs, json_pack("{s:I,s:I}", "pid", (json_int_t)r->volume_fs[k].pid,
                                                                "start_time", (json_int_t)r->volume_fs[k].start_time)) <
                                    0)
                                json_decref(TAKE_PTR(fs));
                q |= json_object_set_new(o, "volume_fs", fs);
        }
        if (r->console_log)
                q |= set_str(o, "console_log", r->console_log);
        q |= set_str(o, "workload_mode", r->workload_mode);
        q |= set_str(o, "image_path", r->image_path);
        if (r->inst.firmware_boot)
                q |= json_object_set_new(o, "firmware_boot", json_true());
        if (r->inst.template) {
                q |= set_str(o, "template", r->inst.template);
                q |= json_object_set_new(o, "identity_given", json_boolean(r->identity_given));
                if (r->pooled)
                        q |= json_object_set_new(o, "pool", json_true());
        }
        q |= set_int(o, "fs_pid", r->fs_pid);
        q |= set_int(o, "fs_pid_start_time", (json_int_t)r->fs_pid_start_time);
        q |= json_object_set_new(o, "workload_started", json_boolean(r->workload_started));
        if (r->secret_environment || r->inst.spec.secret_environment) /* that it had one; never the values */
                q |= json_object_set_new(o, "secret_environment", json_true());
        if (r->workload_exited)
                q |= set_int(o, "workload_status", r->workload_status);
        if (q != 0) {
                json_decref(o);
                return -ENOMEM;
        }
        text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

/* ---- decode --------------------------------------------------------------------------------- */

/* Absent or null leaves *ret NULL (-EBADMSG when required). */
static int get_str(json_t *o, const char *key, bool required, char **ret) {
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v))
                return required ? -EBADMSG : 0;
        if (!json_is_string(v) || json_string_length(v) > PATH_MAX ||
            strlen(json_string_value(v)) != json_string_length(v))
                return -EBADMSG;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

/* Absent leaves *ret 0 (-EBADMSG when required). */
static int get_int(json_t *o, const char *key, bool required, json_int_t min, json_int_t max, json_int_t *ret) {
        json_t *v = json_object_get(o, key);

        *ret = 0;
        if (!v)
                return required ? -EBADMSG : 0;
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                return -EBADMSG;
        *ret = json_integer_value(v);
        return 0;
}

/* Optional: absent leaves *ret NULL. Bounded like the bus codec. */
static int get_strv(json_t *o, const char *key, char ***ret) {
        json_t *v = json_object_get(o, key), *item;
        char **s;
        size_t k;

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_array(v) || json_array_size(v) > MP_STRV_MAX)
                return -EBADMSG;
        s = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!s)
                return -ENOMEM;
        json_array_foreach(v, k, item) {
                if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item) ||
                    !(s[k] = strdup(json_string_value(item)))) {
                        mp_strv_free(s);
                        return -EBADMSG;
                }
        }
        *ret = s;
        return 0;
}

static int get_bool(json_t *o, const char *key, bool required, bool *ret) {
        json_t *v = json_object_get(o, key);

        *ret = false;
        if (!v)
                return required ? -EBADMSG : 0;
        if (!json_is_boolean(v))
                return -EBADMSG;
        *ret = json_is_true(v);
        return 0;
}

/* [{pid, start_time}] by volume index; absent: none running. */
static int decode_volume_fs(const json_t *a, instance_record_t *r) {
        const json_t *e;
        size_t k;

        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a) || json_array_size(a) > VOLUMES_MAX)
                return -EBADMSG;
        json_array_foreach(a, k, e) {
                json_int_t pid, start;

                if (!json_is_object(e) || get_int((json_t *)e, "pid", true, 0, INT_MAX, &pid) < 0 ||
                    get_int((json_t *)e, "start_time", true, 0, INT64_MAX, &start) < 0)
                        return -EBADMSG;
                r->volume_fs[k].pid = pid;
                r->volume_fs[k].start_time = (uint64_t)start;
        }
        return 0;
}

static int decode(json_t *o, bool full, instance_record_t *r) {
        json_int_t generation, cpus, memory, pid, start_time, started, ready, exited, status, stop_at, spawned_ns,
                ready_ns;
        json_int_t fs_pid = 0, fs_start = 0, ws;
        json_t *v;

        if (get_str(o, "instance_id", full, &r->inst.spec.instance_id) < 0 ||
            get_str(o, "deployment_id", true, &r->inst.spec.deployment_id) < 0 ||
            get_str(o, "runtime", full, &r->inst.spec.runtime) < 0 ||
            get_str(o, "image", full, &r->inst.spec.image) < 0 ||
            get_str(o, "kernel", false, &r->inst.spec.kernel) < 0 ||
            get_str(o, "initrd", false, &r->inst.spec.initrd) < 0 ||
            get_str(o, "boot", false, &r->inst.spec.boot) < 0 || get_str(o, "state", full, &r->inst.state) < 0 ||
            get_str(o, "exit_reason", false, &r->inst.exit_reason) < 0 ||
            get_str(o, "exit_message", false, &r->inst.exit_message) < 0 ||
            get_str(o, "shutdown_reason", false, &r->shutdown_reason) < 0 ||
            get_int(o, "generation", full, 0, INT64_MAX, &generation) < 0 ||
            get_int(o, "cpus", full, 1, UINT32_MAX, &cpus) < 0 ||
            get_int(o, "memory_mib", full, 1, UINT32_MAX, &memory) < 0 ||
            get_int(o, "pid", full, 0, INT_MAX, &pid) < 0 ||
            get_int(o, "pid_start_time", full, 0, INT64_MAX, &start_time) < 0 ||
            get_int(o, "started_at", full, 0, INT64_MAX, &started) < 0 ||
            get_int(o, "ready_at", full, 0, INT64_MAX, &ready) < 0 ||
            get_int(o, "exited_at", full, 0, INT64_MAX, &exited) < 0 ||
            get_int(o, "exit_status", full, INT64_MIN, INT64_MAX, &status) < 0 ||
            get_int(o, "stop_requested_at", full, 0, INT64_MAX, &stop_at) < 0 ||
            get_int(o, "spawned_at_ns", false, 0, INT64_MAX, &spawned_ns) < 0 ||
            get_int(o, "ready_at_ns", false, 0, INT64_MAX, &ready_ns) < 0 ||
            get_str(o, "kind", false, &r->inst.spec.kind) < 0 || get_str(o, "address", false, &r->inst.address) < 0 ||
            get_strv(o, "command", &r->inst.spec.command) < 0 ||
            get_strv(o, "environment", &r->inst.spec.environment) < 0 ||
            ports_from_json(json_object_get(o, "ports"), &r->inst.spec.ports, &r->inst.spec.n_ports) < 0 ||
            get_str(o, "console_log", false, &r->console_log) < 0 ||
            get_str(o, "workload_mode", false, &r->workload_mode) < 0 ||
            get_str(o, "image_path", false, &r->image_path) < 0 ||
            get_bool(o, "workload_started", false, &r->workload_started) < 0 ||
            get_bool(o, "firmware_boot", false, &r->inst.firmware_boot) < 0 ||
            get_str(o, "template", false, &r->inst.template) < 0 ||
            get_bool(o, "identity_given", false, &r->identity_given) < 0 ||
            get_bool(o, "pool", false, &r->pooled) < 0 ||
            get_bool(o, "secret_environment", false, &r->secret_environment) < 0 ||
            get_bool(o, "remove_on_exit", full, &r->remove_on_exit) < 0)
                goto malformed;
        if (volumes_from_json(json_object_get(o, "volumes"), &r->inst.spec.volumes, &r->inst.spec.n_volumes) < 0 ||
            decode_volume_fs(json_object_get(o, "volume_fs"), r) < 0)
                goto malformed;
        /* fs_pid and its start time come as a pair (older records have neither). */
        if (json_is_integer(json_object_get(o, "fs_pid")) &&
            (get_int(o, "fs_pid", true, 0, INT_MAX, &fs_pid) < 0 ||
             get_int(o, "fs_pid_start_time", true, 0, INT64_MAX, &fs_start) < 0))
                goto malformed;
        v = json_object_get(o, "workload_status");
        if (v) {
                if (get_int(o, "workload_status", true, 0, 255, &ws) < 0)
                        goto malformed;
                r->workload_exited = true;
                r->workload_status = ws;
        }
        if (r->inst.spec.instance_id && !instance_id_valid(r->inst.spec.instance_id))
                goto malformed;
        if (r->inst.state && !instance_state_valid(r->inst.state))
                goto malformed;
        if (r->console_log && !file_name_valid(r->console_log))
                goto malformed;

        r->inst.spec.generation = (uint64_t)generation;
        r->inst.spec.cpus = (uint32_t)cpus;
        r->inst.spec.memory_mib = (uint32_t)memory;
        r->inst.pid = pid;
        r->pid_start_time = (uint64_t)start_time;
        r->inst.started_at = (uint64_t)started;
        r->inst.ready_at = (uint64_t)ready;
        r->inst.exited_at = (uint64_t)exited;
        r->inst.exit_status = status;
        r->stop_requested_at = (uint64_t)stop_at;
        r->inst.spawned_at_ns = (uint64_t)spawned_ns;
        r->inst.ready_at_ns = (uint64_t)ready_ns;
        r->fs_pid = fs_pid;
        r->fs_pid_start_time = (uint64_t)fs_start;
        return 0;

malformed:
        return -EBADMSG;
}

int instance_record_from_json(const char *text, instance_record_mode_t mode, instance_record_t *ret) {
        _cleanup_(instance_record_clear) instance_record_t r = {};
        json_t *o;
        int q;

        o = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        if (!o)
                return -EBADMSG;
        q = json_is_object(o) ? decode(o, mode == INSTANCE_RECORD_FULL, &r) : -EBADMSG;
        json_decref(o);
        if (q < 0)
                return q;
        *ret = r;
        r = (instance_record_t){};
        return 0;
}
