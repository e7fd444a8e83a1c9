/* fuzz_config_body.c: libFuzzer target for POST /configs, PUT /configs/{id} and POST /secrets bodies: the nesting check, jansson and the data rules must refuse or accept any bytes without a crash; accepted data stores as text that reads back equal, with keys fit to be file names, and a refused secret value is never quoted in a violation. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_data.h"
#include "services/apiserver/apiserver_json.h"

static void assert_violations(const json_t *violations) {
        size_t i;
        json_t *v;

        json_array_foreach(violations, i, v)
                assert(json_is_string(json_object_get(v, "field")) && json_is_string(json_object_get(v, "reason")));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_t *input = NULL, *violations = json_array(), *empty = json_object();
        json_error_t error;
        const char *name, *ns;
        char *text = NULL, path[256];
        int r;

        log_set_max_level(LOG_ERR);
        r = body_json_load((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &input, &error, path,
                           sizeof(path));
        if (r < 0 || !json_is_object(input)) {
                json_decref(input);
                json_decref(violations);
                json_decref(empty);
                return 0;
        }
        if (data_check_name_namespace(input, violations, &name, &ns) == 0)
                assert(name && *name && ns && *ns && strlen(name) <= 63 && strlen(ns) <= 63);
        r = config_data_check(json_object_get(input, "data") ?: empty, violations, &text);
        if (r == 0) {
                json_t *back = json_loads(text, 0, NULL);
                const char *key;
                json_t *value;

                assert(back && json_equal(back, json_object_get(input, "data") ?: empty));
                json_object_foreach(back, key, value)
                        assert(config_key_valid(key) && !strchr(key, '/') && json_is_string(value));
                json_decref(back);
                free(text);
        }
        if (secret_value_check(json_object_get(input, "value"), violations) < 0 &&
            json_string_length(json_object_get(input, "value")) >= 8) {
                char *dumped = json_dumps(violations, JSON_COMPACT);
                /* The reasons are fixed words: a value (of some length) never shows in them. */
                assert(!dumped || !strstr(dumped, json_string_value(json_object_get(input, "value"))));
                free(dumped);
        }
        assert_violations(violations);
        json_decref(violations);
        json_decref(input);
        json_decref(empty);
        return 0;
}
