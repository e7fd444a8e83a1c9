/* vmm_record.c: instance.json, the one file from which a restarted vmm-driver re-adopts an instance.
 * It holds every field of the instance spec: the scheduler compares an adopted instance's spec with
 * its deployment, and a field lost here replaces a running VM after a vmm-driver restart. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "services/vmm-driver/vmm.h"

bool vmm_state_valid(const char *state) {
        static const char *const states[] = {
                INSTANCE_STATE_STARTING, INSTANCE_STATE_RUNNING, INSTANCE_STATE_READY,
                INSTANCE_STATE_STOPPING, INSTANCE_STATE_EXITED,
        };

        for (size_t k = 0; state && k < ELEMENTSOF(states); k++)
                if (streq(state, states[k]))
                        return true;
        return false;
}

void vmm_record_clear(vmm_record_t *r) {
        if (!r)
                return;
        instance_clear(&r->inst);
        free(r->shutdown_reason);
        free(r->workload_mode);
        free(r->image_path);
        *r = (vmm_record_t){};
}

static int set_str(json_t *o, const char *key, const char *v) {
        return json_object_set_new(o, key, v ? json_string(v) : json_null());
}

static int set_int(json_t *o, const char *key, json_int_t v) {
        return json_object_set_new(o, key, json_integer(v));
}

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

int vmm_record_to_json(const vmm_record_t *r, char **ret) {
        const instance_t *i = &r->inst;
        json_t *o;
        char *text;
        int q = 0;

        /* JSON integers are signed 64-bit: the u64 times and counters fit for any real value. */
        if (i->spec.generation > INT64_MAX || i->started_at > INT64_MAX || i->ready_at > INT64_MAX ||
            i->exited_at > INT64_MAX || r->pid_start_time > INT64_MAX || r->stop_requested_at > INT64_MAX ||
            i->spawned_at_ns > INT64_MAX || i->ready_at_ns > INT64_MAX)
                return -ERANGE;

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
        q |= set_str(o, "workload_mode", r->workload_mode);
        q |= set_str(o, "image_path", r->image_path);
        q |= set_int(o, "fs_pid", r->fs_pid);
        q |= set_int(o, "fs_pid_start_time", (json_int_t)r->fs_pid_start_time);
        q |= json_object_set_new(o, "workload_started", json_boolean(r->workload_started));
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

/* Optional string: absent or null leaves *ret NULL. */
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

static int get_int(json_t *o, const char *key, json_int_t min, json_int_t max, json_int_t *ret) {
        json_t *v = json_object_get(o, key);

        if (!v || !json_is_integer(v))
                return -EBADMSG;
        if (json_integer_value(v) < min || json_integer_value(v) > max)
                return -EBADMSG;
        *ret = json_integer_value(v);
        return 0;
}

/* Optional: absent leaves *ret 0 (a record from before these were kept). */
static int get_optional_ns(json_t *o, const char *key, uint64_t *ret) {
        json_int_t v;
        int q;

        if (!json_object_get(o, key))
                return 0;
        q = get_int(o, key, 0, INT64_MAX, &v);
        if (q >= 0)
                *ret = (uint64_t)v;
        return q;
}

int vmm_record_from_json(const char *text, vmm_record_t *ret) {
        _cleanup_(vmm_record_clear) vmm_record_t r = {};
        json_int_t generation, cpus, memory, pid, start_time, started, ready, exited, status, stop_at;
        json_t *o, *rm;
        int q;

        o = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        if (!o)
                return -EBADMSG;
        if (!json_is_object(o)) {
                json_decref(o);
                return -EBADMSG;
        }
        q = get_str(o, "instance_id", true, &r.inst.spec.instance_id);
        if (q >= 0)
                q = get_str(o, "deployment_id", true, &r.inst.spec.deployment_id);
        if (q >= 0)
                q = get_str(o, "runtime", true, &r.inst.spec.runtime);
        if (q >= 0)
                q = get_str(o, "image", true, &r.inst.spec.image);
        if (q >= 0)
                q = get_str(o, "kernel", false, &r.inst.spec.kernel);
        if (q >= 0)
                q = get_str(o, "initrd", false, &r.inst.spec.initrd);
        if (q >= 0)
                q = get_str(o, "state", true, &r.inst.state);
        if (q >= 0)
                q = get_str(o, "exit_reason", false, &r.inst.exit_reason);
        if (q >= 0)
                q = get_str(o, "exit_message", false, &r.inst.exit_message);
        if (q >= 0)
                q = get_str(o, "shutdown_reason", false, &r.shutdown_reason);
        if (q >= 0)
                q = get_int(o, "generation", 0, INT64_MAX, &generation);
        if (q >= 0)
                q = get_int(o, "cpus", 1, UINT32_MAX, &cpus);
        if (q >= 0)
                q = get_int(o, "memory_mib", 1, UINT32_MAX, &memory);
        if (q >= 0)
                q = get_int(o, "pid", 0, INT_MAX, &pid);
        if (q >= 0)
                q = get_int(o, "pid_start_time", 0, INT64_MAX, &start_time);
        if (q >= 0)
                q = get_int(o, "started_at", 0, INT64_MAX, &started);
        if (q >= 0)
                q = get_int(o, "ready_at", 0, INT64_MAX, &ready);
        if (q >= 0)
                q = get_int(o, "exited_at", 0, INT64_MAX, &exited);
        if (q >= 0)
                q = get_int(o, "exit_status", INT64_MIN, INT64_MAX, &status);
        if (q >= 0)
                q = get_int(o, "stop_requested_at", 0, INT64_MAX, &stop_at);
        if (q >= 0)
                q = get_str(o, "kind", false, &r.inst.spec.kind);
        if (q >= 0)
                q = get_str(o, "address", false, &r.inst.address);
        if (q >= 0)
                q = get_strv(o, "command", &r.inst.spec.command);
        if (q >= 0)
                q = get_strv(o, "environment", &r.inst.spec.environment);
        if (q >= 0)
                q = ports_from_json(json_object_get(o, "ports"), &r.inst.spec.ports, &r.inst.spec.n_ports);
        if (q >= 0)
                q = get_str(o, "workload_mode", false, &r.workload_mode);
        if (q >= 0)
                q = get_str(o, "image_path", false, &r.image_path);
        if (q >= 0 && json_is_integer(json_object_get(o, "fs_pid"))) {
                json_int_t fs_pid, fs_start;

                q = get_int(o, "fs_pid", 0, INT_MAX, &fs_pid);
                if (q >= 0)
                        q = get_int(o, "fs_pid_start_time", 0, INT64_MAX, &fs_start);
                if (q >= 0) {
                        r.fs_pid = fs_pid;
                        r.fs_pid_start_time = (uint64_t)fs_start;
                }
        }
        if (q >= 0)
                q = get_optional_ns(o, "spawned_at_ns", &r.inst.spawned_at_ns);
        if (q >= 0)
                q = get_optional_ns(o, "ready_at_ns", &r.inst.ready_at_ns);
        if (q >= 0 && json_is_true(json_object_get(o, "workload_started")))
                r.workload_started = true;
        if (q >= 0 && json_object_get(o, "workload_status")) {
                json_int_t ws;

                q = get_int(o, "workload_status", 0, 255, &ws);
                if (q >= 0) {
                        r.workload_exited = true;
                        r.workload_status = ws;
                }
        }
        rm = json_object_get(o, "remove_on_exit");
        if (q >= 0 && !json_is_boolean(rm))
                q = -EBADMSG;
        if (q >= 0)
                r.remove_on_exit = json_is_true(rm);
        json_decref(o);
        if (q < 0)
                return q;

        if (!instance_id_valid(r.inst.spec.instance_id) || !vmm_state_valid(r.inst.state))
                return -EBADMSG;
        r.inst.spec.generation = (uint64_t)generation;
        r.inst.spec.cpus = (uint32_t)cpus;
        r.inst.spec.memory_mib = (uint32_t)memory;
        r.inst.pid = pid;
        r.pid_start_time = (uint64_t)start_time;
        r.inst.started_at = (uint64_t)started;
        r.inst.ready_at = (uint64_t)ready;
        r.inst.exited_at = (uint64_t)exited;
        r.inst.exit_status = status;
        r.stop_requested_at = (uint64_t)stop_at;

        *ret = r;
        r = (vmm_record_t){};
        return 0;
}

int vmm_record_save(const char *dir, const vmm_record_t *r) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        int q;

        if (snprintf(path, sizeof(path), "%s/" VMM_RECORD_FILE, dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        q = vmm_record_to_json(r, &text);
        if (q < 0)
                return q;
        return write_file_atomic(path, text, strlen(text), 0600);
}

int vmm_record_load(const char *dir, vmm_record_t *r) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        int q;

        if (snprintf(path, sizeof(path), "%s/" VMM_RECORD_FILE, dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        q = read_file(path, VMM_RECORD_MAX, &text, NULL);
        if (q < 0)
                return q;
        return vmm_record_from_json(text, r);
}
