/* apiserver_manifest_health.c: health_checks: Ring's fields and defaults, validated at apply and turned into the bus record's health_checks. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/health.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest_private.h"

/* "10s", "500ms", "2m", or a number of seconds. */
static int duration(const json_t *v, uint64_t def, uint64_t *ret) {
        if (!v) {
                *ret = def;
                return 0;
        }
        if (json_is_integer(v) && json_integer_value(v) > 0) {
                *ret = (uint64_t)json_integer_value(v) * 1000;
                return 0;
        }
        if (json_is_string(v))
                return parse_duration_ms(json_string_value(v), ret) < 0 || *ret == 0 ? -EINVAL : 0;
        return -EINVAL;
}

/* One entry of health_checks into h (owned strings); on a problem, -EINVAL with the field
 * (relative to the entry) and the reason in err. */
static int health_from_json(const json_t *o, health_check_t *h, char *field, size_t field_size, char *err,
                            size_t err_size) {
        static const char *const known[] = {
                "type",      "port",       "url",       "command",      "interval",        "timeout",
                "threshold", "on_failure", "readiness", "start_period", "min_healthy_time"
        };
        const char *type, *key, *on_failure;
        const json_t *v, *threshold;
        uint16_t port;

#define FAIL(f, ...)                                  \
        do {                                          \
                snprintf(field, field_size, "%s", f); \
                snprintf(err, err_size, __VA_ARGS__); \
                return -EINVAL;                       \
        } while (0)

        memset(h, 0, sizeof(*h));
        if (!json_is_object(o))
                FAIL("", "must be a map with type and its target");
        json_object_foreach((json_t *)o, key, v) {
                bool ok = false;
                for (size_t i = 0; i < ELEMENTSOF(known); i++)
                        ok = ok || streq(key, known[i]);
                if (!ok)
                        FAIL(key, "unknown field: a health check has type, port, url, command, interval, timeout, "
                                  "threshold, on_failure, readiness, start_period, min_healthy_time");
        }
        type = json_string_value(json_object_get(o, "type"));
        if (!type || (!streq(type, "tcp") && !streq(type, "http") && !streq(type, "command")))
                FAIL("type", "must be tcp, http or command");
        h->type = strdup(type);
        if (streq(type, "tcp")) {
                v = json_object_get(o, "port");
                if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
                        FAIL("port", "a tcp check needs the guest port to connect to (1-65535)");
                h->port = (uint32_t)json_integer_value(v);
        } else if (streq(type, "http")) {
                const char *url = json_string_value(json_object_get(o, "url"));
                if (!url || strlen(url) > HEALTH_URL_MAX || health_url_split(url, &port, NULL) < 0)
                        FAIL("url", "an http check needs url: http://HOST[:PORT]/PATH (the guest's address is "
                                    "used whatever HOST says)");
                h->url = strdup(url);
        } else {
                v = json_object_get(o, "command");
                if (json_is_string(v) && json_string_length(v) > 0) {
                        /* Ring's form: one shell line. */
                        char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)json_string_value(v), NULL };
                        h->command = mp_strv_copy(argv);
                } else if (json_is_array(v) && json_array_size(v) > 0 && json_array_size(v) <= MP_STRV_MAX) {
                        size_t i;
                        const json_t *a;
                        char **argv = calloc(json_array_size(v) + 1, sizeof(char *));
                        if (!argv)
                                return -ENOMEM;
                        json_array_foreach(v, i, a) {
                                argv[i] = json_is_string(a) ? strdup(json_string_value(a)) : NULL;
                                if (!argv[i]) {
                                        mp_strv_free(argv);
                                        FAIL("command", "must be a shell line or a list of strings");
                                }
                        }
                        h->command = argv;
                } else
                        FAIL("command", "a command check needs command: a shell line or a list of strings");
        }
        if (duration(json_object_get(o, "interval"), HEALTH_DEFAULT_INTERVAL_MS, &h->interval_ms) < 0)
                FAIL("interval", "must be a duration such as 10s, 500ms or 1m");
        if (duration(json_object_get(o, "timeout"), HEALTH_DEFAULT_TIMEOUT_MS, &h->timeout_ms) < 0)
                FAIL("timeout", "must be a duration such as 5s or 500ms");
        if (duration(json_object_get(o, "start_period"), 0, &h->start_period_ms) < 0 &&
            !(json_is_integer(json_object_get(o, "start_period")) &&
              json_integer_value(json_object_get(o, "start_period")) == 0))
                FAIL("start_period", "must be a duration such as 30s");
        if (duration(json_object_get(o, "min_healthy_time"), HEALTH_DEFAULT_MIN_HEALTHY_MS, &h->min_healthy_ms) < 0)
                FAIL("min_healthy_time", "must be a duration such as 10s");
        threshold = json_object_get(o, "threshold");
        if (threshold &&
            (!json_is_integer(threshold) || json_integer_value(threshold) < 1 || json_integer_value(threshold) > 1000))
                FAIL("threshold", "must be a number of consecutive failures from 1 to 1000");
        h->threshold = threshold ? (uint32_t)json_integer_value(threshold) : HEALTH_DEFAULT_THRESHOLD;
        on_failure = json_string_value(json_object_get(o, "on_failure"));
        if (json_object_get(o, "on_failure") &&
            (!on_failure ||
             (!streq(on_failure, "restart") && !streq(on_failure, "stop") && !streq(on_failure, "alert"))))
                FAIL("on_failure", "must be restart, stop or alert");
        h->on_failure = strdup(on_failure ?: "restart");
        v = json_object_get(o, "readiness");
        if (v && !json_is_boolean(v))
                FAIL("readiness", "must be true or false");
        h->readiness = json_is_true(v);
        if (!h->type || !h->on_failure || (streq(type, "http") && !h->url) || (streq(type, "command") && !h->command))
                return -ENOMEM;
        return 0;
#undef FAIL
}

void manifest_parse_health_checks(parse_ctx_t *c, const char *key, const json_t *v) {
        const json_t *o;
        size_t i;

        if (!json_is_array(v))
                return manifest_wrong_type(c, key, "a list", v);
        if (json_array_size(v) > HEALTH_CHECKS_MAX)
                return manifest_violation(c, key, "at most %d health checks", HEALTH_CHECKS_MAX);
        json_array_foreach(v, i, o) {
                health_check_t h;
                char field[64], err[256], path[128];

                if (health_from_json(o, &h, field, sizeof(field), err, sizeof(err)) == -EINVAL) {
                        snprintf(path, sizeof(path), "%s[%zu]%s%s", key, i, field[0] ? "." : "", field);
                        manifest_violation(c, path, "%s", err);
                }
                health_check_clear(&h);
        }
        manifest_keep(c, key, v);
}

int manifest_health_from_spec(const json_t *spec, health_check_t **ret, size_t *ret_n) {
        const json_t *list = json_object_get(spec, "health_checks"), *o;
        health_check_t *a;
        size_t i, n = 0;
        char field[64], err[256];

        *ret = NULL;
        *ret_n = 0;
        if (!json_is_array(list) || json_array_size(list) == 0)
                return 0;
        a = calloc(json_array_size(list), sizeof(*a));
        if (!a)
                return -ENOMEM;
        json_array_foreach(list, i, o) {
                int r = health_from_json(o, &a[n], field, sizeof(field), err, sizeof(err));
                if (r == -ENOMEM) {
                        health_checks_free(a, n + 1);
                        return r;
                }
                if (r == 0)
                        n++;
                else /* validated at apply; a stored one we cannot read is skipped */
                        health_check_clear(&a[n]);
        }
        *ret = a;
        *ret_n = n;
        return 0;
}
