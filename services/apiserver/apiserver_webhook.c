/* apiserver_webhook.c: a webhook's filter and URL rules, the delivery signature, the retry schedule and the body. */
#include "services/apiserver/apiserver_webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest.h"

static void curl_url_cleanupp(CURLU **u) {
        if (*u)
                curl_url_cleanup(*u);
        *u = NULL;
}

static const char *const level_names[] = { EVENT_LEVEL_INFO, EVENT_LEVEL_WARNING, EVENT_LEVEL_ERROR };

void webhook_filter_clear(webhook_filter_t *f) {
        for (size_t i = 0; i < f->n_reasons; i++)
                free(f->reasons[i]);
        for (size_t i = 0; i < f->n_namespaces; i++)
                free(f->namespaces[i]);
        *f = (webhook_filter_t){};
}

static bool in(char *const *a, size_t n, const char *s) {
        if (n == 0)
                return true;
        for (size_t i = 0; i < n; i++)
                if (streq(a[i], s))
                        return true;
        return false;
}

bool webhook_filter_matches(const webhook_filter_t *f, const char *namespace_, const char *level, const char *reason) {
        int rank = event_level_rank(level);

        return rank >= f->min_level && in(f->reasons, f->n_reasons, reason) &&
               in(f->namespaces, f->n_namespaces, namespace_);
}

static json_t *strings(char *const *a, size_t n) {
        json_t *j = json_array();

        for (size_t i = 0; j && i < n; i++)
                json_array_append_new(j, json_string(a[i]));
        return j;
}

json_t *webhook_filter_to_json(const webhook_filter_t *f) {
        return json_pack("{s:o, s:s, s:o}", "reasons", strings(f->reasons, f->n_reasons), "level",
                         level_names[f->min_level >= 0 && f->min_level <= 2 ? f->min_level : 0], "namespaces",
                         strings(f->namespaces, f->n_namespaces));
}

static void violation(json_t *violations, const char *field, const char *reason) {
        if (violations)
                json_array_append_new(violations, json_pack("{s:s, s:s}", "field", field, "reason", reason));
}

/* A reason as the schema spells them: CamelCase letters and digits. */
static bool reason_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > EVENT_REASON_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

/* A list field: an array of at most WEBHOOK_FILTER_MAX distinct strings that pass valid. */
static void list_from_json(const json_t *j, const char *field, bool (*valid)(const char *), const char *what,
                           json_t *violations, char **ret, size_t *ret_n, int *r) {
        const json_t *v;
        size_t i;

        if (!j || json_is_null(j))
                return;
        if (!json_is_array(j) || json_array_size(j) > WEBHOOK_FILTER_MAX) {
                char reason[96];

                snprintf(reason, sizeof(reason), "a list of at most %d %s", WEBHOOK_FILTER_MAX, what);
                violation(violations, field, reason);
                *r = -EINVAL;
                return;
        }
        json_array_foreach(j, i, v) {
                char name[64];

                snprintf(name, sizeof(name), "%s[%zu]", field, i);
                if (!json_is_string(v) || !valid(json_string_value(v))) {
                        violation(violations, name, what);
                        *r = -EINVAL;
                        continue;
                }
                if (in(ret, *ret_n, json_string_value(v)) && *ret_n > 0)
                        continue; /* a repeat adds nothing */
                ret[*ret_n] = strdup(json_string_value(v));
                if (!ret[*ret_n]) {
                        *r = -ENOMEM;
                        return;
                }
                (*ret_n)++;
        }
}

int webhook_filter_from_json(const json_t *j, const char *prefix, json_t *violations, webhook_filter_t *ret) {
        webhook_filter_t f = {};
        const char *key, *level;
        const json_t *v;
        char field[64];
        int r = 0;

        if (!j || json_is_null(j)) {
                *ret = f;
                return 0;
        }
        if (!json_is_object(j)) {
                violation(violations, prefix, "a map of reasons, level and namespaces");
                return -EINVAL;
        }
        json_object_foreach((json_t *)j, key, v) {
                if (streq(key, "reasons") || streq(key, "level") || streq(key, "namespaces"))
                        continue;
                snprintf(field, sizeof(field), "%s.%.40s", prefix, key);
                violation(violations, field, "unknown field: a filter has reasons, level and namespaces");
                r = -EINVAL;
        }
        snprintf(field, sizeof(field), "%s.reasons", prefix);
        list_from_json(json_object_get(j, "reasons"), field, reason_valid, "event reasons (CamelCase, as Created)",
                       violations, f.reasons, &f.n_reasons, &r);
        snprintf(field, sizeof(field), "%s.namespaces", prefix);
        list_from_json(json_object_get(j, "namespaces"), field, manifest_name_is_valid,
                       "namespaces (DNS labels: 1 to 63 of a-z, 0-9 and '-')", violations, f.namespaces,
                       &f.n_namespaces, &r);
        v = json_object_get(j, "level");
        level = json_string_value(v);
        if (v && !json_is_null(v)) {
                f.min_level = level ? event_level_rank(level) : -1;
                if (f.min_level < 0) {
                        snprintf(field, sizeof(field), "%s.level", prefix);
                        violation(violations, field, "info, warning or error: that level and the more severe ones");
                        r = -EINVAL;
                }
        }
        if (r < 0) {
                webhook_filter_clear(&f);
                return r;
        }
        *ret = f;
        return 0;
}

const char *webhook_url_problem(const char *url) {
        _cleanup_(curl_url_cleanupp) CURLU *u = NULL;
        char *scheme = NULL, *host = NULL;
        const char *why = NULL;
        size_t n;

        if (!url)
                return "required: an http:// or https:// URL";
        n = strlen(url);
        if (n == 0 || n > WEBHOOK_URL_MAX)
                return "an http:// or https:// URL of at most 2048 bytes";
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
                        return "printable ASCII without spaces (percent-encode the rest)";
        u = curl_url();
        if (!u)
                return "cannot be checked (out of memory)";
        /* NON_SUPPORT_SCHEME: parse any scheme, so that the answer can say which are taken. */
        if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
                return "not a URL: give http://HOST[:PORT]/PATH or https://...";
        if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
                why = "the scheme must be http or https";
        /* libcurl reads "http:///x" as the host "x"; a receiver is named, not guessed. */
        else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host || !strstr(url, "://") ||
                 strstr(url, "://")[3] == '/')
                why = "names no host";
        curl_free(scheme);
        curl_free(host);
        return why;
}

void webhook_sign(const char *secret, size_t secret_n, const char *body, size_t body_n,
                  char ret[static WEBHOOK_SIGNATURE_LEN]) {
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state st;

        /* _init takes a key of any length (hashed first when longer than a block), as HMAC does. */
        crypto_auth_hmacsha256_init(&st, (const uint8_t *)secret, secret_n);
        crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, body_n);
        crypto_auth_hmacsha256_final(&st, mac);
        sodium_memzero(&st, sizeof(st));
        memcpy(ret, "sha256=", 7);
        sodium_bin2hex(ret + 7, WEBHOOK_SIGNATURE_LEN - 7, mac, sizeof(mac));
}

uint64_t webhook_backoff_ms(uint64_t initial_ms, uint64_t max_ms, uint32_t failed, uint32_t random) {
        uint64_t d = initial_ms ?: 1;

        for (uint32_t i = 1; i < failed && d < max_ms; i++)
                d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
        if (max_ms && d > max_ms)
                d = max_ms;
        return d - d / 2 + (uint64_t)random % (d / 2 + 1);
}

char *webhook_body(const event_t *e, const char *namespace_, const char *deployment_name) {
        json_auto_t *j = event_to_json(e);

        if (!j || json_object_set_new(j, "namespace", json_string(namespace_ ?: "")) < 0 ||
            json_object_set_new(j, "deployment", json_string(deployment_name ?: "")) < 0)
                return NULL;
        return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}
