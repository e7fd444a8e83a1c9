/* apiserver_ignored.c: Ring fields a VM cannot honour are accepted, and each one is recorded as an IgnoredField warning event (Ring's parity table). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_bus.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest.h"

static const struct {
        const char *section; /* top-level map of the spec */
        const char *key;     /* NULL: every key of the section */
        const char *why;
} ignored[] = {
        { "resources", "requests", "a VM is sized from resources.limits" },
        { "config", "image_pull_policy", "there is no image to pull: image is a path on the host" },
        { "config", "server", "there is no image to pull: image is a path on the host" },
        { "config", "username", "there is no image to pull: image is a path on the host" },
        { "config", "password", "there is no image to pull: image is a path on the host" },
        { "config", "user", "the VM runs its image's own users; no uid/gid/privileged mapping applies" },
};

void manifest_ignored_fields(const json_t *spec, manifest_ignored_fn fn, void *userdata) {
        for (size_t i = 0; json_is_object(spec) && i < ELEMENTSOF(ignored); i++) {
                const json_t *section = json_object_get(spec, ignored[i].section);
                const json_t *v = json_object_get(section, ignored[i].key);
                const char *k;
                const json_t *sub;
                char field[160];

                if (!v || json_is_null(v))
                        continue;
                /* resources.requests.cpu and .memory each get their own line. */
                if (json_is_object(v) && json_object_size(v) > 0) {
                        json_object_foreach((json_t *)v, k, sub) {
                                snprintf(field, sizeof(field), "%s.%s.%.64s", ignored[i].section, ignored[i].key, k);
                                fn(field, ignored[i].why, userdata);
                        }
                } else {
                        snprintf(field, sizeof(field), "%s.%s", ignored[i].section, ignored[i].key);
                        fn(field, ignored[i].why, userdata);
                }
        }
}

typedef struct warn_ctx {
        apiserver_t *api;
        const char *id;
} warn_ctx_t;

static void warn_one(const char *field, const char *why, void *userdata) {
        warn_ctx_t *w = userdata;

        apiserver_event(w->api, w->id, EVENT_LEVEL_WARNING, EVENT_IGNORED_FIELD, "%s is ignored: %s", field, why);
}

void apiserver_warn_ignored(apiserver_t *api, const store_deployment_t *d) {
        json_auto_t *spec = stored_json_load(d->spec);
        warn_ctx_t w = { .api = api, .id = d->d.id };

        manifest_ignored_fields(spec, warn_one, &w);
}
