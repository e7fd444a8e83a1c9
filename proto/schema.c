/* schema.c: holds msgpack bodies against the tables generated from proto/schema.yaml. */
#include "proto/schema.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/nesting.h"

/* Bytes of a wire string quoted in an error: enough to recognise it, bounded. */
#define QUOTE_MAX 64u
#define QUOTE(n) (int)((n) < QUOTE_MAX ? (n) : QUOTE_MAX)

int proto_error_set(proto_error_t *e, const char *fmt, ...) {
        va_list ap;

        if (e) {
                va_start(ap, fmt);
                vsnprintf(e->message, sizeof(e->message), fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

/* A field's path for messages; cut when too long (what is left still names the field's start). */
static void path_printf(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);
static void path_printf(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, size, fmt, ap);
        va_end(ap);
}

static const char *type_name(proto_type_t t) {
        static const char *const names[] = {
                [PROTO_ANY] = "anything",   [PROTO_STR] = "a string",   [PROTO_UINT] = "an unsigned integer",
                [PROTO_INT] = "an integer", [PROTO_BOOL] = "a boolean", [PROTO_MAP] = "a map",
                [PROTO_ARRAY] = "an array", [PROTO_BIN] = "binary",     [PROTO_FLOAT] = "a number",
        };
        return names[t];
}

static bool type_ok(proto_type_t t, const msgpack_object *o) {
        switch (t) {
        case PROTO_STR:
                return o->type == MSGPACK_OBJECT_STR;
        case PROTO_UINT:
                return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        case PROTO_INT:
                return o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
                       (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX);
        case PROTO_BOOL:
                return o->type == MSGPACK_OBJECT_BOOLEAN;
        case PROTO_MAP:
                return o->type == MSGPACK_OBJECT_MAP;
        case PROTO_ARRAY:
                return o->type == MSGPACK_OBJECT_ARRAY;
        case PROTO_BIN:
                return o->type == MSGPACK_OBJECT_BIN;
        case PROTO_FLOAT:
                return o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32 ||
                       o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        case PROTO_ANY:
                return true;
        }
        return false;
}

static int check_map(const proto_message_t *m, const msgpack_object *o, unsigned flags, unsigned depth,
                     const char *path, proto_error_t *e);

/* One element of an array or one value of a map: its type, or the message it holds. */
static int check_elem(const proto_field_t *f, const msgpack_object *o, unsigned flags, unsigned depth, const char *path,
                      proto_error_t *e) {
        if (f->sub)
                return check_map(f->sub, o, flags, depth + 1, path, e);
        if (!type_ok(f->elem, o))
                return proto_error_set(e, "%s: must be %s", path, type_name(f->elem));
        return 0;
}

static int check_value(const proto_field_t *f, const msgpack_object *o, unsigned flags, unsigned depth,
                       const char *path, proto_error_t *e) {
        char sub[192];
        int r;

        if (!type_ok(f->type, o))
                return proto_error_set(e, "%s: must be %s", path, type_name(f->type));
        switch (f->type) {
        case PROTO_STR:
                if (f->max && o->via.str.size > f->max)
                        return proto_error_set(e, "%s: longer than %llu bytes", path, (unsigned long long)f->max);
                if (f->values && (flags & PROTO_CHECK_STRICT)) {
                        for (const char *const *v = f->values; *v; v++)
                                if (mp_str_eq(o, *v))
                                        return 0;
                        return proto_error_set(e, "%s: \"%.*s\" is not a known value", path, QUOTE(o->via.str.size),
                                               o->via.str.ptr);
                }
                return 0;
        case PROTO_BIN:
                if (f->max && o->via.bin.size > f->max)
                        return proto_error_set(e, "%s: longer than %llu bytes", path, (unsigned long long)f->max);
                return 0;
        case PROTO_UINT:
                if ((f->max && o->via.u64 > f->max) || o->via.u64 < f->min)
                        return proto_error_set(e, "%s: must be between %llu and %llu", path, (unsigned long long)f->min,
                                               (unsigned long long)(f->max ? f->max : UINT64_MAX));
                return 0;
        case PROTO_ARRAY:
                if (f->max && o->via.array.size > f->max)
                        return proto_error_set(e, "%s: more than %llu entries", path, (unsigned long long)f->max);
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        path_printf(sub, sizeof(sub), "%s[%" PRIu32 "]", path, i);
                        r = check_elem(f, &o->via.array.ptr[i], flags, depth, sub, e);
                        if (r < 0)
                                return r;
                }
                return 0;
        case PROTO_MAP:
                if (f->sub && f->elem == PROTO_MAP) /* a map that is one message */
                        return check_map(f->sub, o, flags, depth + 1, path, e);
                if (f->max && o->via.map.size > f->max)
                        return proto_error_set(e, "%s: more than %llu entries", path, (unsigned long long)f->max);
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object_kv *kv = &o->via.map.ptr[i];

                        if (kv->key.type != MSGPACK_OBJECT_STR)
                                return proto_error_set(e, "%s: keys must be strings", path);
                        path_printf(sub, sizeof(sub), "%s.%.*s", path, QUOTE(kv->key.via.str.size),
                                    kv->key.via.str.ptr);
                        r = check_elem(f, &kv->val, flags, depth, sub, e);
                        if (r < 0)
                                return r;
                }
                return 0;
        default:
                return 0;
        }
}

static const proto_field_t *field_find(const proto_message_t *m, const msgpack_object *key) {
        for (size_t k = 0; k < m->n_fields; k++)
                if (mp_str_eq(key, m->fields[k].name))
                        return &m->fields[k];
        return NULL;
}

static int check_map(const proto_message_t *m, const msgpack_object *o, unsigned flags, unsigned depth,
                     const char *path, proto_error_t *e) {
        char sub[192];
        int r;

        if (depth > HUSK_NESTING_MAX)
                return proto_error_set(e, "%s: nested too deep", path[0] ? path : m->name);
        if (!o || o->type != MSGPACK_OBJECT_MAP)
                return proto_error_set(e, "%s: must be a map", path[0] ? path : m->name);
        for (size_t k = 0; k < m->n_fields; k++) {
                const proto_field_t *f = &m->fields[k];
                const msgpack_object *v = NULL;
                bool present = false;

                for (uint32_t i = 0; i < o->via.map.size; i++)
                        if (mp_str_eq(&o->via.map.ptr[i].key, f->name)) {
                                v = &o->via.map.ptr[i].val;
                                present = true;
                                break;
                        }
                path_printf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", f->name);
                if (!present || (v->type == MSGPACK_OBJECT_NIL && !f->nullable)) {
                        if (f->required)
                                return proto_error_set(e, "%s: missing", sub);
                        continue;
                }
                if (v->type == MSGPACK_OBJECT_NIL)
                        continue;
                r = check_value(f, v, flags, depth, sub, e);
                if (r < 0)
                        return r;
        }
        if (flags & PROTO_CHECK_STRICT)
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object *key = &o->via.map.ptr[i].key;

                        if (key->type != MSGPACK_OBJECT_STR)
                                return proto_error_set(e, "%s: keys must be strings", path[0] ? path : m->name);
                        if (!field_find(m, key))
                                return proto_error_set(e, "%s%s%.*s: not in the schema of %s", path, path[0] ? "." : "",
                                                       QUOTE(key->via.str.size), key->via.str.ptr, m->name);
                }
        return 0;
}

int proto_check(const proto_message_t *m, const msgpack_object *o, unsigned flags, proto_error_t *e) {
        return check_map(m, o, flags, 0, "", e);
}

const proto_message_t *proto_message_find(const char *name) {
        for (size_t k = 0; name && k < PROTO_N_MESSAGES; k++)
                if (streq(proto_messages[k]->name, name))
                        return proto_messages[k];
        return NULL;
}

const proto_method_t *proto_method_find(const char *name) {
        for (size_t k = 0; name && k < PROTO_N_METHODS; k++)
                if (streq(proto_methods[k].name, name))
                        return &proto_methods[k];
        return NULL;
}

const proto_event_t *proto_event_find(const char *type) {
        for (size_t k = 0; type && k < PROTO_N_EVENTS; k++)
                if (proto_events[k].prefix ? strncmp(type, proto_events[k].type, strlen(proto_events[k].type)) == 0
                                           : streq(type, proto_events[k].type))
                        return &proto_events[k];
        return NULL;
}
