/* mp_json.c: a msgpack value as JSON (see mp_json.h). */
#include "lib/mp_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/nesting.h"
#include "lib/util.h"

static json_t *base64_json(const char *p, size_t n) {
        static const char prefix[] = "base64:";
        _cleanup_free_ char *b64 = base64_encode(p, n), *out = NULL;
        size_t len;

        if (!b64)
                return NULL;
        len = strlen(b64);
        out = malloc(sizeof(prefix) + len);
        if (!out)
                return NULL;
        memcpy(out, prefix, sizeof(prefix) - 1);
        memcpy(out + sizeof(prefix) - 1, b64, len + 1);
        return json_string(out);
}

static json_t *to_json(const msgpack_object *o, unsigned flags, unsigned depth);

/* The key of a map pair, or NULL when the pair is left out (or out of memory). */
static char *key_of(const msgpack_object *k, unsigned flags, unsigned depth) {
        json_t *j;
        char *s;

        if (k->type == MSGPACK_OBJECT_STR && !memchr(k->via.str.ptr, 0, k->via.str.size))
                return strndup(k->via.str.ptr, k->via.str.size);
        if (!(flags & MP_JSON_SHOW_BYTES))
                return NULL;
        j = to_json(k, flags, depth);
        s = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        json_decref(j);
        return s;
}

static json_t *to_json(const msgpack_object *o, unsigned flags, unsigned depth) {
        bool show = flags & MP_JSON_SHOW_BYTES;
        json_auto_t *v = NULL;

        if (depth > HUSK_NESTING_MAX)
                return NULL;
        switch (o->type) {
        case MSGPACK_OBJECT_NIL:
                return json_null();
        case MSGPACK_OBJECT_BOOLEAN:
                return json_boolean(o->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                if (o->via.u64 > INT64_MAX) {
                        char buf[24];

                        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)o->via.u64);
                        return json_string(buf);
                }
                return json_integer((json_int_t)o->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                return json_integer((json_int_t)o->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                return isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
        case MSGPACK_OBJECT_STR:
                /* Not UTF-8 (jansson refuses it): null, rather than dropping the whole value. */
                v = json_stringn(o->via.str.ptr, o->via.str.size);
                if (v)
                        return TAKE_PTR(v);
                return show ? base64_json(o->via.str.ptr, o->via.str.size) : json_null();
        case MSGPACK_OBJECT_BIN:
                return show ? base64_json(o->via.bin.ptr, o->via.bin.size) : json_null();
        case MSGPACK_OBJECT_EXT:
                return show ? json_pack("{s:i, s:o}", "ext", (int)o->via.ext.type, "data",
                                        base64_json(o->via.ext.ptr, o->via.ext.size))
                            : json_null();
        case MSGPACK_OBJECT_ARRAY:
                v = json_array();
                if (!v)
                        return NULL;
                for (uint32_t i = 0; i < o->via.array.size; i++)
                        if (json_array_append_new(v, to_json(&o->via.array.ptr[i], flags, depth + 1)) < 0)
                                return NULL;
                return TAKE_PTR(v);
        case MSGPACK_OBJECT_MAP:
                v = json_object();
                if (!v)
                        return NULL;
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object_kv *kv = &o->via.map.ptr[i];
                        _cleanup_free_ char *key = key_of(&kv->key, flags, depth + 1);
                        json_t *value;

                        if (!key)
                                continue;
                        value = to_json(&kv->val, flags, depth + 1);
                        if (!value)
                                return NULL;
                        /* A key that is not UTF-8 cannot be a JSON key: the pair is dropped. */
                        (void)json_object_set_new(v, key, value);
                }
                return TAKE_PTR(v);
        }
        return json_null();
}

json_t *mp_to_json(const msgpack_object *o, unsigned flags) { return to_json(o, flags, 0); }
