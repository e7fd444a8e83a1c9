/* apiserver_manifest_labels.c: labels: Kubernetes-style keys, short string values, YAML scalars turned into strings. */
#include <string.h>

#include "services/apiserver/apiserver_manifest_private.h"

/* Kubernetes' rule: an optional DNS subdomain prefix and '/', then a name. */
static bool label_name_is_valid(const char *s, size_t n) {
        if (n < 1 || n > 63)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');

                if (!alnum && !((ch == '-' || ch == '_' || ch == '.') && i > 0 && i < n - 1))
                        return false;
        }
        return true;
}

static bool dns_subdomain_is_valid(const char *s, size_t n) {
        if (n < 1 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
                bool edge = i == 0 || i == n - 1 || s[i - 1] == '.' || s[i + 1] == '.';

                if (!alnum && !((ch == '-' || ch == '.') && !edge))
                        return false;
        }
        return true;
}

static bool label_key_is_valid(const char *key) {
        const char *slash = strchr(key, '/');

        if (!slash)
                return label_name_is_valid(key, strlen(key));
        return dns_subdomain_is_valid(key, (size_t)(slash - key)) && label_name_is_valid(slash + 1, strlen(slash + 1));
}

static size_t utf8_length(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                n += ((unsigned char)*s & 0xC0) != 0x80;
        return n;
}

void manifest_parse_labels(parse_ctx_t *c, const char *key, const json_t *v) {
        const char *k;
        json_t *value;

        if (!json_is_object(v))
                return manifest_wrong_type(c, key, "a map of key: value", v);
        json_object_foreach((json_t *)v, k, value) {
                _cleanup_free_ char *dumped = NULL;
                char field[160], q[96];
                const char *s;

                manifest_field_path(field, sizeof(field), key, k);
                if (!label_key_is_valid(k)) {
                        json_auto_t *jk = json_string(k);

                        manifest_violation(
                                c, field,
                                "%s is not a valid label key: use [prefix/]name, where name is 1-63 letters, "
                                "digits, '-', '_' or '.' starting and ending with a letter or digit, and the "
                                "optional prefix is a DNS subdomain (e.g. \"app\" or \"example.com/tier\")",
                                jk ? manifest_show(jk, q, sizeof(q)) : "key");
                        continue;
                }
                /* YAML turns `version: 2` and `canary: true` into numbers and booleans; labels are strings. */
                if (json_is_string(value))
                        s = json_string_value(value);
                else if (json_is_number(value) || json_is_boolean(value))
                        s = dumped = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
                else {
                        manifest_wrong_type(c, field, "a string, number or boolean", value);
                        continue;
                }
                if (!s) {
                        c->oom = true;
                        continue;
                }
                if (utf8_length(s) > 63) {
                        manifest_violation(c, field, "value %s is %zu characters long; label values are limited to 63",
                                           manifest_show(value, q, sizeof(q)), utf8_length(s));
                        continue;
                }
                if (json_object_set_new(c->m.labels, k, json_string(s)) < 0)
                        c->oom = true;
        }
}
