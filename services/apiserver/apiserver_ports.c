/* apiserver_ports.c: the `ports` field: validation, normalization, and one owner per host port. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest_private.h"
#include "services/apiserver/apiserver_ports.h"

static const char *const port_keys[] = { "published", "target", "protocol", "host_ip" };

/* A published port listens on host_ip, so it must be an address of this host (0.0.0.0: all of
 * them): else the deployment is stored and every start fails in netd. Binding a socket to it
 * tells, without sending anything. apiserver and netd share the host today; a multi-host husk
 * moves this check to the host's netd. */
static bool address_is_local(const struct in_addr *a) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = *a };
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return true; /* cannot tell here; netd will */
        return bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != EADDRNOTAVAIL;
}

static bool port_number(const json_t *v) {
        return json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 65535;
}

/* Each entry {published, target, protocol: tcp|udp (default tcp), host_ip?}; kept as given (Ring
 * fields stay as the user wrote them), read back through ports_from_json(). */
void manifest_parse_ports(parse_ctx_t *c, const char *key, const json_t *v) {
        _cleanup_(json_decrefp) json_t *out = json_array();
        json_t *e;
        size_t i;
        bool ok = true;

        if (!out) {
                c->oom = true;
                return;
        }
        if (!json_is_array(v))
                return manifest_wrong_type(c, key, "a list", v);
        if (json_array_size(v) > PORTS_MAX)
                return manifest_violation(c, key, "has %zu entries, at most %d are allowed", json_array_size(v),
                                          PORTS_MAX);
        json_array_foreach(v, i, e) {
                const json_t *pub = json_object_get(e, "published"), *tgt = json_object_get(e, "target");
                const json_t *proto = json_object_get(e, "protocol"), *host_ip = json_object_get(e, "host_ip");
                char field[64], q[96];
                const char *k;
                json_t *x, *norm;
                struct in_addr a;

                snprintf(field, sizeof(field), "%s[%zu]", key, i);
                if (!json_is_object(e)) {
                        manifest_wrong_type(c, field, "a map {published, target, protocol, host_ip}", e);
                        ok = false;
                        continue;
                }
                json_object_foreach((json_t *)e, k, x) {
                        size_t n;
                        for (n = 0; n < ELEMENTSOF(port_keys) && !streq(k, port_keys[n]); n++)
                                ;
                        if (n == ELEMENTSOF(port_keys)) {
                                char f[96];
                                manifest_violation(c, manifest_field_path(f, sizeof(f), field, k),
                                                   "unknown field: a port has published, target, protocol, host_ip");
                                ok = false;
                        }
                }
                if (!port_number(pub)) {
                        snprintf(field, sizeof(field), "%s[%zu].published", key, i);
                        manifest_violation(c, field, "must be a port number 1-65535, got %s",
                                           pub ? manifest_show(pub, q, sizeof(q)) : "nothing");
                        ok = false;
                }
                if (!port_number(tgt)) {
                        snprintf(field, sizeof(field), "%s[%zu].target", key, i);
                        manifest_violation(c, field, "must be a port number 1-65535, got %s",
                                           tgt ? manifest_show(tgt, q, sizeof(q)) : "nothing");
                        ok = false;
                }
                if (proto && !json_is_null(proto) &&
                    !(json_is_string(proto) &&
                      (streq(json_string_value(proto), "tcp") || streq(json_string_value(proto), "udp")))) {
                        snprintf(field, sizeof(field), "%s[%zu].protocol", key, i);
                        manifest_violation(c, field, "must be tcp or udp, got %s", manifest_show(proto, q, sizeof(q)));
                        ok = false;
                }
                if (host_ip && !json_is_null(host_ip) &&
                    !(json_is_string(host_ip) && inet_pton(AF_INET, json_string_value(host_ip), &a) == 1)) {
                        snprintf(field, sizeof(field), "%s[%zu].host_ip", key, i);
                        manifest_violation(c, field, "must be an IPv4 address of this host, got %s",
                                           manifest_show(host_ip, q, sizeof(q)));
                        ok = false;
                } else if (json_is_string(host_ip) && !address_is_local(&a)) {
                        snprintf(field, sizeof(field), "%s[%zu].host_ip", key, i);
                        manifest_violation(c, field,
                                           "%s is not an address of this host: use 0.0.0.0 (every address), "
                                           "127.0.0.1 or an address of one of its interfaces",
                                           manifest_show(host_ip, q, sizeof(q)));
                        ok = false;
                }
                if (!ok)
                        continue;
                norm = json_pack("{s:O,s:O,s:s}", "published", pub, "target", tgt, "protocol",
                                 json_is_string(proto) ? json_string_value(proto) : "tcp");
                if (!norm || (json_is_string(host_ip) && json_object_set(norm, "host_ip", (json_t *)host_ip) < 0) ||
                    json_array_append_new(out, norm) < 0) {
                        c->oom = true;
                        return;
                }
        }
        if (!ok)
                return;
        /* One deployment cannot publish the same host port twice. */
        for (size_t a = 0; a < json_array_size(out); a++)
                for (size_t b = 0; b < a; b++) {
                        json_t *x = json_array_get(out, a), *y = json_array_get(out, b);
                        if (json_integer_value(json_object_get(x, "published")) ==
                                    json_integer_value(json_object_get(y, "published")) &&
                            streq(json_string_value(json_object_get(x, "protocol")),
                                  json_string_value(json_object_get(y, "protocol")))) {
                                char field[64];
                                snprintf(field, sizeof(field), "%s[%zu].published", key, a);
                                manifest_violation(c, field,
                                                   "%" JSON_INTEGER_FORMAT "/%s is already published by %s[%zu]",
                                                   json_integer_value(json_object_get(x, "published")),
                                                   json_string_value(json_object_get(x, "protocol")), key, b);
                                return;
                        }
                }
        manifest_keep(c, key, v);
}

/* As in Ring: a published host port reaches one VM, so it cannot be spread over replicas. */
void manifest_check_ports(parse_ctx_t *c, const json_t *input) {
        const json_t *ports = json_object_get(input, "ports");

        if (json_array_size(ports) > 0 && c->m.replicas > 1)
                manifest_violation(c, "ports",
                                   "cannot be used with replicas > 1 (replicas is %u): a host port forwards to one "
                                   "instance; publish ports from a single replica, or drop ports:",
                                   c->m.replicas);
}

int manifest_ports_from_spec(const json_t *spec, port_spec_t **ret, size_t *ret_n) {
        *ret = NULL;
        *ret_n = 0;
        if (!spec)
                return 0;
        return ports_from_json(json_object_get(spec, "ports"), ret, ret_n);
}

static bool host_ips_overlap(const char *a, const char *b) {
        return !*a || !*b || streq(a, "0.0.0.0") || streq(b, "0.0.0.0") || streq(a, b);
}

int apiserver_ports_conflict(apiserver_store_t *s, const manifest_t *m, char *message, size_t size) {
        _cleanup_free_ port_spec_t *mine = NULL;
        store_deployment_t *all = NULL;
        size_t n_mine, n_all = 0;
        int r;

        r = ports_from_json(json_object_get(m->spec, "ports"), &mine, &n_mine);
        if (r < 0 || n_mine == 0)
                return r;
        r = store_deployment_list(s, NULL, &all, &n_all);
        for (size_t k = 0; r == 0 && k < n_all; k++)
                r = store_deployment_derive(&all[k]);
        for (size_t k = 0; k < n_all && r == 0; k++) {
                const deployment_t *o = &all[k].d;

                if ((streq(o->namespace_, m->namespace_) && streq(o->name, m->name)) ||
                    streq(o->status, DEPLOYMENT_STATUS_DELETED))
                        continue;
                for (size_t i = 0; i < n_mine && r == 0; i++)
                        for (size_t j = 0; j < o->n_ports && r == 0; j++)
                                if (mine[i].published == o->ports[j].published &&
                                    mine[i].protocol == o->ports[j].protocol &&
                                    host_ips_overlap(mine[i].host_ip, o->ports[j].host_ip)) {
                                        snprintf(message, size,
                                                 "ports[%zu].published: %u/%s is already published by deployment %s/%s",
                                                 i, mine[i].published, port_protocol_to_string(mine[i].protocol),
                                                 o->namespace_, o->name);
                                        r = -EADDRINUSE;
                                }
        }
        store_deployment_array_free(all, n_all);
        return r;
}
