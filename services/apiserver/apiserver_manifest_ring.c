/* apiserver_manifest_ring.c: Ring fields husk cannot act on (yet): config (accepted for an IgnoredField warning), network and secrets (refused), never stored in silence. */
#include <stdio.h>
#include <string.h>

#include "services/apiserver/apiserver_manifest_private.h"

#define SOON "; the secrets work will add it: until then it is refused, not ignored"

/* config.user: {id, group, privileged}, typed as Ring types them. */
static bool check_user(parse_ctx_t *c, const char *field, const json_t *user) {
        static const char *const keys[] = { "id", "group", "privileged" };
        const char *k;
        json_t *x;
        bool ok = true;

        if (!json_is_object(user)) {
                manifest_wrong_type(c, field, "a map with id, group and privileged", user);
                return false;
        }
        json_object_foreach((json_t *)user, k, x) {
                bool known = false, flag = streq(k, "privileged");
                char sub[128];

                for (size_t i = 0; i < ELEMENTSOF(keys) && !known; i++)
                        known = streq(k, keys[i]);
                manifest_field_path(sub, sizeof(sub), field, k);
                if (!known) {
                        manifest_violation(c, sub, "unknown field: config.user has id, group and privileged");
                        ok = false;
                } else if (!json_is_null(x) && (flag ? !json_is_boolean(x)
                                                     : !json_is_integer(x) || json_integer_value(x) < 0 ||
                                                                json_integer_value(x) > UINT32_MAX)) {
                        manifest_wrong_type(c, sub, flag ? "true or false" : "a uid/gid number", x);
                        ok = false;
                }
        }
        return ok;
}

/* Ring's config: {image_pull_policy, server, username, password, user: {id, group, privileged}}
 * (Docker's registry login and container user). Each is typed as Ring types it and kept for the
 * IgnoredField warning (apiserver_ignored.c); anything else is refused, since nothing would read it. */
void manifest_parse_config(parse_ctx_t *c, const char *key, const json_t *v) {
        static const char *const strings[] = { "image_pull_policy", "server", "username", "password" };
        const char *k;
        json_t *x;
        bool ok = true;

        if (!json_is_object(v))
                return manifest_wrong_type(c, key, "a map", v);
        json_object_foreach((json_t *)v, k, x) {
                char field[96];
                bool known = false;

                manifest_field_path(field, sizeof(field), key, k);
                for (size_t i = 0; i < ELEMENTSOF(strings) && !known; i++)
                        known = streq(k, strings[i]);
                if ((known || streq(k, "user")) && json_is_null(x))
                        continue;
                if (known) {
                        if (!json_is_string(x)) {
                                manifest_wrong_type(c, field, "a string", x);
                                ok = false;
                        }
                        continue;
                }
                if (!streq(k, "user")) {
                        manifest_violation(c, field,
                                           "unknown field: config has image_pull_policy, server, username, password "
                                           "and user");
                        ok = false;
                } else if (!check_user(c, field, x))
                        ok = false;
        }
        if (ok)
                manifest_keep(c, key, v);
}

/* Every VM has a network of its own (a /30 behind netd, no bridge between VMs); Ring refuses
 * host networking on its VM runtime, and so does husk. An empty map asks for nothing. */
void manifest_parse_network(parse_ctx_t *c, const char *key, const json_t *v) {
        const json_t *mode = json_object_get(v, "mode");

        if (!json_is_object(v))
                return manifest_wrong_type(c, key, "a map", v);
        if (json_is_string(mode) && streq(json_string_value(mode), "host"))
                return manifest_violation(c, "network.mode",
                                          "host networking is refused on VM runtimes: a VM has its own kernel and "
                                          "network stack; publish ports with ports: instead");
        if (json_object_size(v) > 0)
                return manifest_violation(c, key,
                                          "is not supported: every VM gets a network of its own (an isolated /30, "
                                          "reachable through ports:); leave network out");
}

/* Not a Ring deployment field (Ring's secrets are objects of their own, used through
 * environment: {X: {secretRef: name}}), and husk has no secrets store yet. */
void manifest_parse_secrets(parse_ctx_t *c, const char *key, const json_t *v) {
        manifest_violation(c, key, "secrets are not supported yet" SOON);
}
