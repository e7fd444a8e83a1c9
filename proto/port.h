/* port.h: a published port (deployment and instance spec field `ports`, see proto/SCHEMA.md). */
#pragma once

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PORTS_MAX 64        /* per deployment: anything a client sends is bounded */
#define PORT_HOST_IP_MAX 16 /* dotted IPv4 plus NUL; the guest networks are IPv4 */

typedef enum port_protocol {
        PORT_TCP,
        PORT_UDP,
} port_protocol_t;

typedef struct port_spec {
        uint16_t published; /* host port, 1-65535 */
        uint16_t target;    /* guest port, 1-65535 */
        port_protocol_t protocol;
        char host_ip[PORT_HOST_IP_MAX]; /* "" = every local address of the host */
} port_spec_t;

/* "tcp" | "udp" */
const char *port_protocol_to_string(port_protocol_t p);
/* -EINVAL for anything but "tcp" or "udp". */
int port_protocol_from_string(const char *s, port_protocol_t *ret);

/* Pack `ports` as an array of {published, target, protocol, host_ip?} maps. */
void ports_pack(msgpack_packer *pk, const port_spec_t *ports, size_t n);
/* Decode the array value o. Bounds: PORTS_MAX entries, ports 1-65535, protocol tcp|udp,
 * host_ip a dotted IPv4 address. *ret is a new array (NULL when n is 0); -EBADMSG on any
 * violation. */
int ports_unpack(const msgpack_object *o, port_spec_t **ret, size_t *ret_n);
/* The optional `ports` key of map o: absent or nil gives 0 ports. */
int ports_get(const msgpack_object *map, port_spec_t **ret, size_t *ret_n);

/* The same specs as JSON, for the files daemons keep (instance.json, netd's state): an array of
 * {published, target, protocol, host_ip?} objects. NULL on ENOMEM. */
json_t *ports_to_json(const port_spec_t *ports, size_t n);
/* Decode the array j with the bounds of ports_unpack(); NULL or JSON null gives 0 ports. *ret is a
 * new array (NULL when n is 0); -EBADMSG on any violation, nothing allocated then. */
int ports_from_json(const json_t *j, port_spec_t **ret, size_t *ret_n);

bool ports_equal(const port_spec_t *a, size_t na, const port_spec_t *b, size_t nb);
