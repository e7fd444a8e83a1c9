/* apiserver_ports.h: published ports: what a stored spec asks for, and the host ports two deployments may not share. */
#pragma once

#include <stddef.h>

#include "proto/port.h"
#include "services/apiserver/apiserver_manifest.h"
#include "services/apiserver/apiserver_store.h"

/* The ports of a stored spec (JSON text, as manifest_parse normalized it). */
int manifest_ports_from_spec(const json_t *spec, port_spec_t **ret, size_t *ret_n);

/* Is a published port of m already published by another live deployment (same protocol and
 * port, overlapping host_ip)? -EADDRINUSE with message naming ports[i].published and the owner. */
int apiserver_ports_conflict(apiserver_store_t *s, const manifest_t *m, char *message, size_t size);
