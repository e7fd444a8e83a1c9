/* apiserver_json.h: the REST representations: a stored deployment, and msgpack results as JSON. */
#pragma once

#include <jansson.h>
#include <msgpack.h>

#include "services/apiserver/apiserver_store.h"

/* {id, namespace, name, runtime, kind, image, kernel?, replicas, ready_replicas, labels,
 *  resources: {limits: {cpu, memory: "<N>Mi"}}, status, status_message, generation,
 *  restart_count, created_at, updated_at, spec, exit_code (a job's, null until it ended)}.
 *  NULL on allocation failure. */
json_t *deployment_to_json(const store_deployment_t *d);

/* Exited instances as GET /deployments/{id} shows them: [{id, instance_id, generation, address?,
 * state: "exited", started_at, exited_at (unix ms), exit_reason, exit_status}]. */
json_t *exits_to_json(const store_exit_t *a, size_t n);

/* Ring names an instance {id, address}: each instance record (instance_id, address?, ...) also
 * gets its instance_id as "id". -ENOMEM. */
int instances_add_ids(json_t *instances);

/* A msgpack object (a bus reply) as JSON. Binary and extension values become null, map
 * entries with non-string keys are skipped, nesting deeper than 32 levels is refused (NULL). */
json_t *msgpack_to_json(const msgpack_object *o);

/* {id, deployment_id, timestamp (RFC 3339), timestamp_ms, level, component, reason, message}. */
json_t *event_to_json(const event_t *e);
