/* apiserver_bus.h: apiserver on the bus: deployment.* requests and events, and its vmm-driver client. */
#pragma once

#include <jansson.h>

#include "services/apiserver/apiserver.h"

/* The deployment.* methods of proto/SCHEMA.md ("Requests / apiserver"). */
extern const bus_method_t apiserver_bus_methods[];

/* Publish a deployment.* event for d (message optional). Failures are logged and ignored:
 * the store is the truth, and subscribers resync from deployment.list. */
void apiserver_publish(apiserver_t *api, const char *type, const store_deployment_t *d, const char *message);

/* apiserver_events.c: store an event (id and timestamp filled in), then publish it as
 * event.<level>. -ENOENT when the deployment is unknown. */
int apiserver_event_record(apiserver_t *api, event_t *e);
/* apiserver's own events (component "apiserver"); failures are logged here and returned. */
int apiserver_event(apiserver_t *api, const char *deployment_id, const char *level, const char *reason, const char *fmt,
                    ...) _printf_(5, 6);
/* apiserver_ignored.c: one IgnoredField warning per field of d's spec a VM cannot honour. */
void apiserver_warn_ignored(apiserver_t *api, const store_deployment_t *d);
/* At apply: each secret m's environment names ({secretRef}) exists in its namespace. 0, or
 * -EINVAL with *ret_violations a new array naming environment.KEY for each that does not
 * (apiserver_resolve.c). */
int apiserver_check_refs(apiserver_t *api, const manifest_t *m, json_t **ret_violations);
/* deployment.resolve (apiserver_resolve.c). */
int apiserver_method_resolve(bus_request_t *req, msgpack_packer *pk, void *userdata);
/* The event.record request handler. */
int apiserver_method_event_record(bus_request_t *req, msgpack_packer *pk, void *userdata);

/* Ask vmm-driver for the instances of a deployment (NULL: of every deployment), 1 s deadline.
 * Returns 0 with *ret a JSON array (each record with Ring's "id" too), or a negative errno with
 * *ret_error a message for the user (caller frees). */
int apiserver_instances(apiserver_t *api, const char *deployment_id, json_t **ret, char **ret_error);
