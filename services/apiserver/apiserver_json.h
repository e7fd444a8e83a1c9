/* apiserver_json.h: the REST representations: a stored deployment, and msgpack results as JSON. */
#pragma once

#include <jansson.h>
#include <czmq.h>
#include <msgpack.h>

#include "services/apiserver/apiserver_store.h"

/* Whether a record's stored labels and spec can be spliced into an answer as they are (JSON
 * objects within the nesting bound); false for a column that is NULL. */
typedef struct stored_readable {
        bool labels, spec;
} stored_readable_t;
/* ret[i] for each of the n records of a, checked once per stored text and remembered; an
 * unreadable text is logged when first found. 0, or -ENOMEM. */
int deployments_stored_readable(const store_deployment_t *a, size_t n, stored_readable_t *ret);

/* A deployment as the API shows it, as JSON text appended to out: {id, namespace, name, runtime,
 * kind, image, replicas, ready_replicas, resources: {limits: {cpu, memory: "<N>Mi"}}, status,
 * status_message, generation, restart_count, created_at, updated_at, kernel?, exit_code (a
 * job's, null until it ended), labels, spec}, labels_error/spec_error beside a stored value that
 * cannot be read (shown as null, and logged once), then extra's members (NULL: none). The one
 * definition of the record: lists write it straight into the answer. readable: what
 * deployments_stored_readable() found for d. 0, or -ENOMEM. */
int deployment_json_append(zchunk_t *out, const store_deployment_t *d, const stored_readable_t *readable,
                           const json_t *extra);
/* The same as a value, for answers that add to it. NULL on allocation failure. */
json_t *deployment_to_json(const store_deployment_t *d);

/* A request body into JSON, its nesting checked before jansson (which recurses) sees it.
 * 0 with *ret set; -ELOOP when lists and maps nest deeper than HUSK_NESTING_MAX, with the path
 * of the first too-deep value in path; -EINVAL when it is not JSON (jansson's reason in error). */
int body_json_load(const char *body, size_t size, size_t flags, json_t **ret, json_error_t *error, char *path,
                   size_t path_size);

/* JSON text from the store back into a value; NULL when absent, not JSON, or nested deeper than
 * HUSK_NESTING_MAX (a record written before the bound existed): every reader of stored JSON goes
 * through this, and treats NULL as a record it cannot read, never as a reason to fail. */
json_t *stored_json_load(const char *text);

/* Exited instances as GET /deployments/{id} shows them: [{id, instance_id, generation, address?,
 * state: "exited", started_at, exited_at (unix ms), exit_reason, exit_status}]. */
json_t *exits_to_json(const store_exit_t *a, size_t n);

/* Ring names an instance {id, address}: each instance record (instance_id, address?, ...) also
 * gets its instance_id as "id". -ENOMEM. */
int instances_add_ids(json_t *instances);

/* A bus reply as the API shows it: lib/mp_json.h's mp_to_json without flags (binary and
 * extension values null, non-string keys skipped, nesting deeper than HUSK_NESTING_MAX refused:
 * NULL). */
json_t *msgpack_to_json(const msgpack_object *o);

/* {id, deployment_id, timestamp (RFC 3339), timestamp_ms, level, component, reason, message}. */
json_t *event_to_json(const event_t *e);
