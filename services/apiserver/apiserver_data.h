/* apiserver_data.h: the rules of a config's name, namespace and data and of a secret's value
 * (apiserver_data.c), shared by the routes and their fuzzer. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#define CONFIG_KEY_MAX 253

/* A config key becomes a file name in a config volume: 1 to 253 of A-Z, a-z, 0-9, '.', '_' and
 * '-', not "." or "..". */
bool config_key_valid(const char *k);
/* data: an object of at most STORE_CONFIG_KEYS_MAX string values (each at most
 * STORE_CONFIG_VALUE_MAX bytes without NUL) under valid keys: 0 with *ret the text to store
 * (compact, keys sorted), else -EINVAL with a violation per problem appended to violations. */
int config_data_check(const json_t *data, json_t *violations, char **ret);
/* name (required) and namespace (default "default") of a body, each a DNS label: 0, else
 * -EINVAL with violations appended. The strings point into input. */
int data_check_name_namespace(const json_t *input, json_t *violations, const char **ret_name, const char **ret_ns);
/* A secret's value: a string of 1 to STORE_SECRET_VALUE_MAX bytes without NUL: 0, else -EINVAL
 * with a violation appended (never quoting the value). */
int secret_value_check(const json_t *value, json_t *violations);
