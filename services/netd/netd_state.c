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

                if (json_object_set_new(inst, a->instance_id,
                                        json_pack("{s:o,s:s}", "ports", ports_to_json(a->ports, a->n_ports),
                                                  "deployment_id", a->deployment_id)) < 0)
                        goto out;
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
                _cleanup_free_ port_spec_t *ports = NULL;
                size_t n;

                /* An entry we cannot read is skipped: its TAP is still adopted, without ports. */
                if (ports_from_json(json_object_get(v, "ports"), &ports, &n) < 0)
                        continue;
                fn(id, json_string_value(json_object_get(v, "deployment_id")) ?: "", ports, n, ud);
        }
        json_decref(root);
        return 0;
}
