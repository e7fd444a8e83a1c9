/* apiserver_json.c: how deployments look over REST, and msgpack bus results turned into JSON. */
#include "services/apiserver/apiserver_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "lib/log.h"
#include "lib/mp_json.h"
#include "lib/nesting.h"
#include "lib/util.h"

int body_json_load(const char *body, size_t size, size_t flags, json_t **ret, json_error_t *error, char *path,
                   size_t path_size) {
        json_t *v;

        if (json_nesting_check(body, size, path, path_size) > 0)
                return -ELOOP;
        v = json_loadb(body, size, flags, error);
        if (!v)
                return -EINVAL;
        *ret = v;
        return 0;
}

json_t *stored_json_load(const char *text) {
        char path[64];

        if (!text || json_nesting_check(text, strlen(text), path, sizeof(path)) > 0)
                return NULL;
        return json_loads(text, 0, NULL);
}

/* A row that holds no JSON we can show (written before the nesting bound, or damaged) shows its
 * other fields, with null there and the reason beside it, rather than failing the listing. */
static json_t *parse_stored(const store_deployment_t *d, const char *column, const char *text, json_t *o) {
        json_t *v = stored_json_load(text);
        char key[32];

        if (v || !text)
                return v ?: json_null();
        log_warning("Deployment %s: its stored %s is not JSON nested at most %u deep; shown as null", d->d.id, column,
                    HUSK_NESTING_MAX);
        snprintf(key, sizeof(key), "%s_error", column);
        (void)json_object_set_new(o, key,
                                  json_sprintf("the stored %s cannot be read (not JSON nested at most %u deep); "
                                               "apply the deployment again to replace it",
                                               column, HUSK_NESTING_MAX));
        return json_null();
}

json_t *deployment_to_json(const store_deployment_t *d) {
        char created[32], updated[32], memory[32];
        json_auto_t *o = NULL;

        snprintf(memory, sizeof(memory), "%" PRIu32 "Mi", d->d.memory_mib);
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:{s:{s:I, s:s}}, s:s, s:s, s:I, s:I, "
                      "s:s, s:s, s:o}",
                      "id", d->d.id, "namespace", d->d.namespace_, "name", d->d.name, "runtime", d->d.runtime, "kind",
                      d->d.kind, "image", d->d.image, "replicas", (json_int_t)d->d.replicas, "ready_replicas",
                      (json_int_t)d->d.ready_replicas, "labels", json_null(), "resources", "limits", "cpu",
                      (json_int_t)d->d.cpus, "memory", memory, "status", d->d.status, "status_message",
                      d->status_message ?: "", "generation", (json_int_t)d->d.generation, "restart_count",
                      (json_int_t)d->restart_count, "created_at",
                      format_timestamp_ms(d->created_at, created, sizeof(created)), "updated_at",
                      format_timestamp_ms(d->updated_at, updated, sizeof(updated)), "spec", json_null());
        if (!o)
                return NULL;
        if (json_object_set_new(o, "labels", parse_stored(d, "labels", d->labels, o)) < 0 ||
            json_object_set_new(o, "spec", parse_stored(d, "spec", d->spec, o)) < 0)
                return NULL;
        if (d->d.kernel && json_object_set_new(o, "kernel", json_string(d->d.kernel)) < 0)
                return NULL;
        if (json_object_set_new(o, "exit_code", d->has_exit_code ? json_integer(d->exit_code) : json_null()) < 0)
                return NULL;
        return TAKE_PTR(o);
}

json_t *exits_to_json(const store_exit_t *a, size_t n) {
        json_auto_t *list = json_array();

        for (size_t i = 0; list && i < n; i++) {
                const store_exit_t *e = &a[i];
                json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:s, s:I}", "id", e->instance_id, "instance_id",
                                      e->instance_id, "generation", (json_int_t)e->generation, "state", "exited",
                                      "started_at", (json_int_t)e->started_at, "exited_at", (json_int_t)e->exited_at,
                                      "exit_reason", e->exit_reason, "exit_status", (json_int_t)e->exit_status);

                if (!o || (e->address && json_object_set_new(o, "address", json_string(e->address)) < 0) ||
                    json_array_append_new(list, o) < 0)
                        return NULL;
        }
        return TAKE_PTR(list);
}

int instances_add_ids(json_t *instances) {
        json_t *i;
        size_t k;

        json_array_foreach(instances, k, i) {
                json_t *id = json_object_get(i, "instance_id");

                if (json_is_string(id) && json_object_set(i, "id", id) < 0)
                        return -ENOMEM;
        }
        return 0;
}

json_t *msgpack_to_json(const msgpack_object *o) { return mp_to_json(o, 0); }
