/* agent_bundle.c: what husk-agent takes from an OCI bundle's config.json (process.args, env, cwd), and what it reports ignoring. */
#include "services/agent/agent.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/nesting.h"

void agent_bundle_clear(agent_bundle_t *b) {
        mp_strv_free(b->args);
        mp_strv_free(b->env);
        free(b->cwd);
        mp_strv_free(b->ignored);
        *b = (agent_bundle_t){};
}

static int strv_from_json(const json_t *a, char ***ret) {
        char **v;
        json_t *item;
        size_t k;

        if (!json_is_array(a) || json_array_size(a) > MP_STRV_MAX)
                return -EBADMSG;
        v = calloc(json_array_size(a) + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        json_array_foreach(a, k, item) {
                if (!json_is_string(item) || json_string_length(item) > MP_STRV_ITEM_MAX ||
                    strlen(json_string_value(item)) != json_string_length(item)) {
                        mp_strv_free(v);
                        return -EBADMSG;
                }
                v[k] = strdup(json_string_value(item));
                if (!v[k]) {
                        mp_strv_free(v);
                        return -ENOMEM;
                }
        }
        *ret = v;
        return 0;
}

static int fail(char **ret_error, const char *message) {
        if (ret_error)
                *ret_error = strdup(message);
        return -EBADMSG;
}

int agent_bundle_parse(const char *text, agent_bundle_t *ret, char **ret_error) {
        /* A VM has its own kernel: namespaces, cgroups, seccomp, devices and capabilities are
         * the VM boundary's job, and runV ignored them the same way. */
        static const char *const ignorable[][2] = {
                { "process", "capabilities" }, { "process", "rlimits" },   { "process", "apparmorProfile" },
                { "process", "selinuxLabel" }, { "mounts", NULL },         { "hooks", NULL },
                { "linux", "namespaces" },     { "linux", "devices" },     { "linux", "resources" },
                { "linux", "seccomp" },        { "linux", "maskedPaths" }, { "linux", "readonlyPaths" },
                { "linux", "uidMappings" },    { "linux", "gidMappings" }, { "linux", "sysctl" },
        };
        _cleanup_(agent_bundle_clear) agent_bundle_t b = {};
        json_t *root, *process, *v;
        size_t n_ignored = 0;
        char path[128], message[256];
        int r = 0;

        /* The bundle is the user's: its nesting is checked before jansson recurses into it. */
        if (json_nesting_check(text, strlen(text), path, sizeof(path)) > 0) {
                snprintf(message, sizeof(message), "config.json: %s: " HUSK_NESTING_REASON, path, HUSK_NESTING_MAX);
                return fail(ret_error, message);
        }
        root = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(root)) {
                json_decref(root);
                return fail(ret_error, "config.json: not a JSON object");
        }
        process = json_object_get(root, "process");
        if (!json_is_object(process)) {
                r = fail(ret_error, "config.json: process: missing or not an object");
                goto out;
        }
        v = json_object_get(process, "args");
        if (v && (r = strv_from_json(v, &b.args)) < 0) {
                r = r == -ENOMEM ? r : fail(ret_error, "config.json: process.args: must be an array of strings");
                goto out;
        }
        v = json_object_get(process, "env");
        if (v && (r = strv_from_json(v, &b.env)) < 0) {
                r = r == -ENOMEM ? r : fail(ret_error, "config.json: process.env: must be an array of strings");
                goto out;
        }
        v = json_object_get(process, "cwd");
        if (v) {
                if (!json_is_string(v) || json_string_value(v)[0] != '/') {
                        r = fail(ret_error, "config.json: process.cwd: must be an absolute path");
                        goto out;
                }
                b.cwd = strdup(json_string_value(v));
                if (!b.cwd) {
                        r = -ENOMEM;
                        goto out;
                }
        }

        b.ignored = calloc(ELEMENTSOF(ignorable) + 2, sizeof(char *));
        if (!b.ignored) {
                r = -ENOMEM;
                goto out;
        }
        /* Output goes to the console, not a terminal. */
        if (json_is_true(json_object_get(process, "terminal")) &&
            !(b.ignored[n_ignored++] = strdup("process.terminal"))) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t k = 0; k < ELEMENTSOF(ignorable); k++) {
                json_t *o = json_object_get(root, ignorable[k][0]);
                char name[64];

                if (ignorable[k][1])
                        o = json_object_get(o, ignorable[k][1]);
                if (!o || json_is_null(o) || (json_is_array(o) && json_array_size(o) == 0) ||
                    (json_is_object(o) && json_object_size(o) == 0))
                        continue;
                snprintf(name, sizeof(name), "%s%s%s", ignorable[k][0], ignorable[k][1] ? "." : "",
                         ignorable[k][1] ?: "");
                if (!(b.ignored[n_ignored++] = strdup(name))) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        *ret = b;
        b = (agent_bundle_t){};
out:
        json_decref(root);
        return r;
}
