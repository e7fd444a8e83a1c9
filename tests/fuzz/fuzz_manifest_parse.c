/* fuzz_manifest_parse.c: libFuzzer target for a POST /deployments body: the nesting check, jansson and the manifest validator must refuse or accept any bytes without a crash, and what they accept must read back from the store's text as the daemons read it. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "lib/nesting.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest.h"
#include "services/apiserver/apiserver_ports.h"

static void count_ignored(const char *field, const char *why, void *userdata) {
        assert(field && *field && why && *why);
        (*(size_t *)userdata)++;
}

/* The spec as stored (compact, sorted) and read back by every reader of the store. */
static void read_back(const json_t *spec) {
        char *text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
        json_t *again;
        char **command = NULL, **env = NULL;
        health_check_t *checks = NULL;
        port_spec_t *ports = NULL;
        size_t n_checks = 0, n_ports = 0, n_ignored = 0;

        if (!text)
                return;
        again = stored_json_load(text);
        assert(again && json_equal(again, spec)); /* an accepted spec nests within the bound */
        /* What the bus record derives from the stored spec, as store_deployment_derive does. */
        assert(manifest_workload_from_spec(again, &command, &env) != -EBADMSG);
        mp_strv_free(command);
        mp_strv_free(env);
        if (manifest_health_from_spec(again, &checks, &n_checks) == 0)
                health_checks_free(checks, n_checks);
        assert(manifest_ports_from_spec(again, &ports, &n_ports) != -EBADMSG);
        free(ports);
        json_decref(again);
        manifest_ignored_fields(spec, count_ignored, &n_ignored);
        free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_t *input = NULL, *violations = NULL;
        json_error_t error;
        manifest_t m = {};
        char path[256];
        int r;

        log_set_max_level(LOG_ERR);
        r = body_json_load((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &input, &error, path,
                           sizeof(path));
        if (r == -ELOOP) {
                assert(path[0] || size > 0);
                return 0;
        }
        if (r < 0)
                return 0;
        r = manifest_parse(input, &m, &violations);
        if (r == 0) {
                assert(m.name && m.namespace_ && m.image && m.spec && !violations);
                read_back(m.spec);
                manifest_clear(&m);
        } else if (r == -EINVAL) {
                size_t i;
                json_t *v;

                assert(json_array_size(violations) > 0);
                json_array_foreach(violations, i, v) assert(json_is_string(json_object_get(v, "field")) &&
                                                            json_is_string(json_object_get(v, "reason")));
                json_decref(violations);
        }
        json_decref(input);
        return 0;
}
