/* apiserver_data.c: the rules of what POST /configs and POST /secrets take: names, a config's
 * data, a secret's value. Every problem becomes a {field, reason} violation. */
#include "services/apiserver/apiserver_data.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_manifest.h"
#include "services/apiserver/apiserver_store.h"

/* A file name in a config volume and a key alike: no '/', not "." or "..". */
bool config_key_valid(const char *k) {
        size_t n = strlen(k);

        if (n == 0 || n > CONFIG_KEY_MAX || streq(k, ".") || streq(k, ".."))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') ||
                      k[i] == '.' || k[i] == '_' || k[i] == '-'))
                        return false;
        return true;
}

/* data: an object of string values: the stored text into *ret, or a violation into violations. */
int config_data_check(const json_t *data, json_t *violations, char **ret) {
        const char *key;
        json_t *value;

        if (!json_is_object(data)) {
                json_array_append_new(violations, json_pack("{s:s, s:s}", "field", "data", "reason",
                                                            "must be a map of key: string value"));
                return -EINVAL;
        }
        if (json_object_size(data) > STORE_CONFIG_KEYS_MAX) {
                json_array_append_new(violations,
                                      json_pack("{s:s, s:s}", "field", "data", "reason", "has more than 256 keys"));
                return -EINVAL;
        }
        json_object_foreach((json_t *)data, key, value) {
                char field[CONFIG_KEY_MAX + 16];

                snprintf(field, sizeof(field), "data.%s", key);
                if (!config_key_valid(key))
                        json_array_append_new(violations,
                                              json_pack("{s:s, s:s}", "field", field, "reason",
                                                        "a key is 1 to 253 of A-Z, a-z, 0-9, '.', '_' and '-' (it "
                                                        "becomes a file name), not . or .."));
                else if (!json_is_string(value))
                        json_array_append_new(violations,
                                              json_pack("{s:s, s:s}", "field", field, "reason", "must be a string"));
                else if (json_string_length(value) > STORE_CONFIG_VALUE_MAX ||
                         strlen(json_string_value(value)) != json_string_length(value))
                        json_array_append_new(violations, json_pack("{s:s, s:s}", "field", field, "reason",
                                                                    "must be at most 262144 bytes without NUL"));
        }
        if (json_array_size(violations) > 0)
                return -EINVAL;
        *ret = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
        return *ret ? 0 : -ENOMEM;
}

int data_check_name_namespace(const json_t *input, json_t *violations, const char **ret_name, const char **ret_ns) {
        const json_t *name = json_object_get(input, "name"), *ns = json_object_get(input, "namespace");

        *ret_name = json_string_value(name);
        *ret_ns = ns && !json_is_null(ns) ? json_string_value(ns) : "default";
        if (!*ret_name || !manifest_name_is_valid(*ret_name))
                json_array_append_new(violations,
                                      json_pack("{s:s, s:s}", "field", "name", "reason",
                                                "required: 1 to 63 of a-z, 0-9 and '-', starting and ending with a "
                                                "letter or digit"));
        if (!*ret_ns || !manifest_name_is_valid(*ret_ns))
                json_array_append_new(violations, json_pack("{s:s, s:s}", "field", "namespace", "reason",
                                                            "a DNS label (1 to 63 of a-z, 0-9 and '-')"));
        return json_array_size(violations) > 0 ? -EINVAL : 0;
}

int secret_value_check(const json_t *value, json_t *violations) {
        if (!json_is_string(value))
                json_array_append_new(violations,
                                      json_pack("{s:s, s:s}", "field", "value", "reason", "required: a string"));
        else if (json_string_length(value) == 0 || json_string_length(value) > STORE_SECRET_VALUE_MAX ||
                 strlen(json_string_value(value)) != json_string_length(value))
                json_array_append_new(violations,
                                      json_pack("{s:s, s:s}", "field", "value", "reason",
                                                "1 to 65536 bytes without NUL (an environment value's bound)"));
        else
                return 0;
        return -EINVAL;
}
