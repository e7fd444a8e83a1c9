/* apiserver_ignored.c: Ring fields a VM cannot honour are accepted, and each one is recorded as an IgnoredField warning event (Ring's parity table). */
#include <jansson.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_bus.h"
#include "services/apiserver/apiserver_json.h"

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

void apiserver_warn_ignored(apiserver_t *api, const store_deployment_t *d) {
        json_auto_t *spec = stored_json_load(d->spec);

        for (size_t i = 0; spec && i < ELEMENTSOF(ignored); i++) {
                const json_t *section = json_object_get(spec, ignored[i].section);
                const json_t *v = json_object_get(section, ignored[i].key);
                const char *k;
                const json_t *sub;

                if (!v || json_is_null(v))
                        continue;
                /* resources.requests.cpu and .memory each get their own line. */
                if (json_is_object(v) && json_object_size(v) > 0) {
                        json_object_foreach((json_t *)v, k, sub)
                                apiserver_event(api, d->d.id, EVENT_LEVEL_WARNING, EVENT_IGNORED_FIELD,
                                                "%s.%s.%s is ignored: %s", ignored[i].section, ignored[i].key, k,
                                                ignored[i].why);
                } else
                        apiserver_event(api, d->d.id, EVENT_LEVEL_WARNING, EVENT_IGNORED_FIELD, "%s.%s is ignored: %s",
                                        ignored[i].section, ignored[i].key, ignored[i].why);
        }
}
