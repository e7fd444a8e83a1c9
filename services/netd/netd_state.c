/* netd_state.c: the one small state file netd keeps: the published ports of each attachment (the rest is in the kernel). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/netd/netd.h"

#define STATE_MAX_BYTES (4u << 20)

int netd_state_save(netd_t *n) {
        json_t *root = json_object(), *inst = json_object();
        char *text = NULL;
        int r = -ENOMEM;

        if (!root || !inst || json_object_set_new(root, "version", json_integer(1)) < 0)
                goto out;
        for (size_t k = 0; k < n->n_attachments; k++) {
                const netd_attachment_t *a = n->attachments[k];
                json_t *ports = json_array();

                if (!ports || json_object_set_new(inst, a->instance_id, json_pack("{s:o,s:s}", "ports", ports,
                                                                                  "deployment_id", a->deployment_id)) < 0)
                        goto out;
                for (size_t i = 0; i < a->n_ports; i++) {
                        const port_spec_t *p = &a->ports[i];
                        if (json_array_append_new(ports, json_pack("{s:i,s:i,s:s,s:s}", "published", (int)p->published,
                                                                   "target", (int)p->target, "protocol",
                                                                   port_protocol_to_string(p->protocol), "host_ip",
                                                                   p->host_ip)) < 0)
                                goto out;
                }
        }
        if (json_object_set(root, "instances", inst) < 0)
                goto out;
        text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
        if (text)
                r = write_file_atomic(n->state_path, text, strlen(text), 0600);
out:
        free(text);
        json_decref(inst);
        json_decref(root);
        return r;
}

int netd_state_load(const char *path,
                    void (*fn)(const char *id, const char *deployment_id, port_spec_t *ports, size_t n, void *ud),
                    void *ud) {
        _cleanup_free_ char *text = NULL;
        json_t *root, *inst, *v;
        const char *id;
        int r;

        r = read_file(path, STATE_MAX_BYTES, &text, NULL);
        if (r < 0)
                return r;
        root = json_loads(text, 0, NULL);
        inst = root ? json_object_get(root, "instances") : NULL;
        if (!json_is_object(inst)) {
                json_decref(root);
                return -EBADMSG;
        }
        json_object_foreach(inst, id, v) {
                json_t *ports = json_object_get(v, "ports"), *e;
                port_spec_t a[PORTS_MAX] = {};
                size_t n = 0, i;

                if (!json_is_array(ports) || json_array_size(ports) > PORTS_MAX)
                        continue;
                json_array_foreach(ports, i, e) {
                        json_int_t pub = json_integer_value(json_object_get(e, "published"));
                        json_int_t tgt = json_integer_value(json_object_get(e, "target"));
                        const char *proto = json_string_value(json_object_get(e, "protocol"));
                        const char *host_ip = json_string_value(json_object_get(e, "host_ip"));

                        if (pub < 1 || pub > 65535 || tgt < 1 || tgt > 65535 ||
                            port_protocol_from_string(proto, &a[n].protocol) < 0)
                                continue;
                        a[n].published = (uint16_t)pub;
                        a[n].target = (uint16_t)tgt;
                        snprintf(a[n].host_ip, sizeof(a[n].host_ip), "%s", host_ip ?: "");
                        n++;
                }
                fn(id, json_string_value(json_object_get(v, "deployment_id")) ?: "", a, n, ud);
        }
        json_decref(root);
        return 0;
}
