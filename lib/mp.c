/* mp.c: bounded msgpack map readers and writers (see mp.h). */
#include "lib/mp.h"

#include <errno.h>
#include <string.h>

bool mp_str_eq(const msgpack_object *o, const char *s) {
        size_t n = strlen(s);

        return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
               memcmp(o->via.str.ptr, s, n) == 0;
}

const msgpack_object *mp_map_get(const msgpack_object *map, const char *key) {
        if (!map || map->type != MSGPACK_OBJECT_MAP)
                return NULL;
        for (uint32_t i = 0; i < map->via.map.size; i++) {
                const msgpack_object_kv *kv = &map->via.map.ptr[i];
                if (mp_str_eq(&kv->key, key))
                        return kv->val.type == MSGPACK_OBJECT_NIL ? NULL : &kv->val;
        }
        return NULL;
}

int mp_str_dup(const msgpack_object *o, size_t max_len, char **ret) {
        char *s;

        if (!o || o->type != MSGPACK_OBJECT_STR)
                return -EBADMSG;
        if (o->via.str.size > max_len)
                return -EMSGSIZE;
        if (memchr(o->via.str.ptr, '\0', o->via.str.size))
                return -EBADMSG;
        s = strndup(o->via.str.ptr, o->via.str.size);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int mp_get_str(const msgpack_object *map, const char *key, size_t max_len, char **ret) {
        const msgpack_object *o = mp_map_get(map, key);

        if (!o)
                return -ENOENT;
        return mp_str_dup(o, max_len, ret);
}

int mp_get_u64(const msgpack_object *map, const char *key, uint64_t *ret) {
        const msgpack_object *o = mp_map_get(map, key);

        if (!o)
                return -ENOENT;
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return -EBADMSG;
        *ret = o->via.u64;
        return 0;
}

int mp_get_i64(const msgpack_object *map, const char *key, int64_t *ret) {
        const msgpack_object *o = mp_map_get(map, key);

        if (!o)
                return -ENOENT;
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                *ret = o->via.i64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
                *ret = (int64_t)o->via.u64;
        else
                return -EBADMSG;
        return 0;
}

int mp_get_bool(const msgpack_object *map, const char *key, bool *ret) {
        const msgpack_object *o = mp_map_get(map, key);

        if (!o)
                return -ENOENT;
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
                return -EBADMSG;
        *ret = o->via.boolean;
        return 0;
}

void mp_pack_str(msgpack_packer *pk, const char *s) {
        size_t n;

        if (!s) {
                msgpack_pack_nil(pk);
                return;
        }
        n = strlen(s);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, s, n);
}

void mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *value) {
        mp_pack_str(pk, key);
        mp_pack_str(pk, value);
}

void mp_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value) {
        mp_pack_str(pk, key);
        msgpack_pack_uint64(pk, value);
}

void mp_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t value) {
        mp_pack_str(pk, key);
        msgpack_pack_int64(pk, value);
}

void mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool value) {
        mp_pack_str(pk, key);
        if (value)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
}
