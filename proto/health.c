/* health.c: codec of the health_checks array of a deployment record (proto/SCHEMA.md). */
#include "proto/health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/util.h"

void health_check_clear(health_check_t *h) {
        free(h->type);
        free(h->url);
        mp_strv_free(h->command);
        free(h->on_failure);
        memset(h, 0, sizeof(*h));
}

void health_checks_free(health_check_t *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                health_check_clear(&a[i]);
        free(a);
}

void health_checks_pack(msgpack_packer *pk, const health_check_t *a, size_t n) {
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
                const health_check_t *h = &a[i];

                msgpack_pack_map(pk, 9);
                mp_pack_kv_str(pk, "type", h->type);
                if (streq(h->type, "tcp"))
                        mp_pack_kv_u64(pk, "port", h->port);
                else if (streq(h->type, "http"))
                        mp_pack_kv_str(pk, "url", h->url);
                else
                        mp_pack_kv_strv(pk, "command", h->command);
                mp_pack_kv_u64(pk, "interval_ms", h->interval_ms);
                mp_pack_kv_u64(pk, "timeout_ms", h->timeout_ms);
                mp_pack_kv_u64(pk, "threshold", h->threshold);
                mp_pack_kv_str(pk, "on_failure", h->on_failure);
                mp_pack_kv_bool(pk, "readiness", h->readiness);
                mp_pack_kv_u64(pk, "start_period_ms", h->start_period_ms);
                mp_pack_kv_u64(pk, "min_healthy_ms", h->min_healthy_ms);
        }
}

static int get_u64_default(const msgpack_object *o, const char *key, uint64_t def, uint64_t *ret) {
        int r = mp_get_u64(o, key, ret);

        if (r == -ENOENT) {
                *ret = def;
                return 0;
        }
        return r;
}

static int unpack_one(const msgpack_object *o, health_check_t *h) {
        uint64_t v;
        int r;

        if (o->type != MSGPACK_OBJECT_MAP || mp_get_str(o, "type", 16, &h->type) < 0)
                return -EBADMSG;
        if (streq(h->type, "tcp")) {
                if (mp_get_u64(o, "port", &v) < 0 || v == 0 || v > 65535)
                        return -EBADMSG;
                h->port = (uint32_t)v;
        } else if (streq(h->type, "http")) {
                if (mp_get_str(o, "url", HEALTH_URL_MAX, &h->url) < 0 || health_url_split(h->url, NULL, NULL) < 0)
                        return -EBADMSG;
        } else if (streq(h->type, "command")) {
                if (mp_get_strv(o, "command", &h->command) < 0 || !h->command || !h->command[0])
                        return -EBADMSG;
        } else
                return -EBADMSG;
        if (get_u64_default(o, "interval_ms", HEALTH_DEFAULT_INTERVAL_MS, &h->interval_ms) < 0 ||
            get_u64_default(o, "timeout_ms", HEALTH_DEFAULT_TIMEOUT_MS, &h->timeout_ms) < 0 ||
            get_u64_default(o, "threshold", HEALTH_DEFAULT_THRESHOLD, &v) < 0 ||
            get_u64_default(o, "start_period_ms", 0, &h->start_period_ms) < 0 ||
            get_u64_default(o, "min_healthy_ms", HEALTH_DEFAULT_MIN_HEALTHY_MS, &h->min_healthy_ms) < 0)
                return -EBADMSG;
        if (v == 0 || v > 1000 || h->interval_ms == 0 || h->timeout_ms == 0)
                return -EBADMSG;
        h->threshold = (uint32_t)v;
        r = mp_get_str(o, "on_failure", 16, &h->on_failure);
        if (r == -ENOENT)
                h->on_failure = strdup("restart");
        else if (r < 0)
                return -EBADMSG;
        if (!h->on_failure)
                return -ENOMEM;
        if (!streq(h->on_failure, "restart") && !streq(h->on_failure, "stop") && !streq(h->on_failure, "alert"))
                return -EBADMSG;
        r = mp_get_bool(o, "readiness", &h->readiness);
        if (r < 0 && r != -ENOENT)
                return -EBADMSG;
        return 0;
}

int health_checks_get(const msgpack_object *map, health_check_t **ret, size_t *ret_n) {
        const msgpack_object *o = mp_map_get(map, "health_checks");
        health_check_t *a;
        size_t n;
        int r;

        *ret = NULL;
        *ret_n = 0;
        if (!o)
                return 0;
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > HEALTH_CHECKS_MAX)
                return -EBADMSG;
        n = o->via.array.size;
        if (n == 0)
                return 0;
        a = calloc(n, sizeof(*a));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = unpack_one(&o->via.array.ptr[i], &a[i]);
                if (r < 0) {
                        health_checks_free(a, n);
                        return r == -ENOMEM ? r : -EBADMSG;
                }
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

int health_url_split(const char *url, uint16_t *ret_port, const char **ret_path) {
        const char *host, *slash, *colon;
        uint64_t port = 80;
        char digits[8];

        if (!url || strncmp(url, "http://", 7) != 0)
                return -EINVAL;
        host = url + 7;
        slash = strchr(host, '/');
        colon = memchr(host, ':', slash ? (size_t)(slash - host) : strlen(host));
        if (colon) {
                size_t n = (slash ? (size_t)(slash - colon) : strlen(colon)) - 1;

                if (n == 0 || n >= sizeof(digits))
                        return -EINVAL;
                memcpy(digits, colon + 1, n);
                digits[n] = '\0';
                if (parse_u64(digits, &port) < 0 || port == 0 || port > 65535)
                        return -EINVAL;
        }
        if (ret_port)
                *ret_port = (uint16_t)port;
        if (ret_path)
                *ret_path = slash ? slash : "/";
        return 0;
}
