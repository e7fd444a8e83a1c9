/* apiserver_bus.h: apiserver on the bus: deployment.* requests and events, and its vmm-driver client. */
#pragma once

#include <jansson.h>

#include "services/apiserver/apiserver.h"

/* The deployment.* methods of proto/SCHEMA.md ("Requests / apiserver"). */
extern const bus_method_t apiserver_bus_methods[];

/* Publish a deployment.* event for d (message optional). Failures are logged and ignored:
 * the store is the truth, and subscribers resync from deployment.list. */
void apiserver_publish(apiserver_t *api, const char *type, const store_deployment_t *d, const char *message);

/* Ask vmm-driver for the instances of a deployment (1 s deadline). Returns 0 with *ret a JSON
 * array, or a negative errno with *ret_error a message for the user (caller frees). */
int apiserver_instances(apiserver_t *api, const char *deployment_id, json_t **ret, char **ret_error);
