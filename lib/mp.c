/* mp.c: bounded msgpack map readers and writers (see mp.h). */
#include "lib/mp.h"
#include "lib/nesting.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <msgpack/unpack_define.h>
#include <string.h>

/* msgpack-c's unpacker is what bounds the nesting of every msgpack body we read (the bus, agent
 * frames): it refuses more than MSGPACK_EMBED_STACK_SIZE levels. Our walkers of unpacked
 * objects stop at HUSK_NESTING_MAX, which must therefore not be the looser of the two. */
_Static_assert(HUSK_NESTING_MAX <= MSGPACK_EMBED_STACK_SIZE, "HUSK_NESTING_MAX exceeds msgpack-c's bound");

/* Bytes of a header after its first, and the payload length it announces (strings, bin, ext). */
static int item_length(const uint8_t *p, size_t left, size_t *ret_len, uint32_t *ret_children) {
        uint8_t b = p[0];
        size_t head = 1, payload = 0, width = 0;
        uint32_t children = 0;

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
                ; /* fixint, nil, bool */
        else if (b >= 0xa0 && b <= 0xbf)
                payload = b & 0x1f;
        else if (b >= 0x80 && b <= 0x8f)
                children = 2u * (b & 0x0f);
        else if (b >= 0x90 && b <= 0x9f)
                children = b & 0x0f;
        else
                switch (b) {
                case 0xcc:
                case 0xd0:
                        head = 2;
                        break;
                case 0xcd:
                case 0xd1:
                        head = 3;
                        break;
                case 0xca:
                case 0xce:
                case 0xd2:
                        head = 5;
                        break;
                case 0xcb:
                case 0xcf:
                case 0xd3:
                        head = 9;
                        break;
                case 0xd4:
                        head = 3;
                        break;
                case 0xd5:
                        head = 4;
                        break;
                case 0xd6:
                        head = 6;
                        break;
                case 0xd7:
                        head = 10;
                        break;
                case 0xd8:
                        head = 18;
                        break;
                case 0xc4:
                case 0xd9:
                        width = 1;
                        break;
                case 0xc5:
                case 0xda:
                        width = 2;
                        break;
                case 0xc6:
                case 0xdb:
                        width = 4;
                        break;
                case 0xc7:
                        width = 1;
                        head = 1;
                        break; /* ext: length, then a type byte */
                case 0xc8:
                        width = 2;
                        head = 1;
                        break;
                case 0xc9:
                        width = 4;
                        head = 1;
                        break;
                case 0xdc:
                case 0xde:
                        width = 2;
                        break;
                case 0xdd:
                case 0xdf:
                        width = 4;
                        break;
                default:
                        return -EBADMSG; /* 0xc1 is never used */
                }
        if (width) {
                uint64_t n = 0;

                if (left < 1 + width)
                        return -EBADMSG;
                for (size_t k = 0; k < width; k++)
                        n = n << 8 | p[1 + k];
                head = 1 + width + (b >= 0xc7 && b <= 0xc9 ? 1 : 0);
                if (b == 0xdc || b == 0xdd)
                        children = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
                else if (b == 0xde || b == 0xdf) {
                        if (n > UINT32_MAX / 2)
                                return -EBADMSG;
                        children = 2u * (uint32_t)n;
                } else
                        payload = (size_t)n;
        }
        if (head > left || payload > left - head)
                return -EBADMSG;
        *ret_len = head + payload;
        *ret_children = children;
        return 0;
}

int mp_check(const void *data, size_t size) {
        const uint8_t *p = data;
        uint32_t pending[HUSK_NESTING_MAX + 1]; /* children still to read, per open container */
        size_t depth = 0, off = 0, objects = 0;

        if (size == 0)
                return -EBADMSG;
        if (size > MP_MAX_MESSAGE_BYTES)
                return -EMSGSIZE;
        pending[0] = 1; /* the top-level object */
        while (depth > 0 || pending[0] > 0) {
                size_t len;
                uint32_t children;
                int r;

                if (pending[depth] == 0) { /* this container is complete */
                        depth--;
                        continue;
                }
                if (off >= size)
                        return -EBADMSG;
                r = item_length(p + off, size - off, &len, &children);
                if (r < 0)
                        return r;
                pending[depth]--;
                off += len;
                if (++objects > MP_MAX_MESSAGE_OBJECTS)
                        return -E2BIG;
                if (children == 0)
                        continue;
                /* Every child takes at least a byte: a count beyond the bytes left is a lie. */
                if (children > size - off)
                        return -EBADMSG;
                if (depth + 1 > HUSK_NESTING_MAX)
                        return -ELOOP;
                pending[++depth] = children;
        }
        return off == size ? 0 : -EBADMSG;
}

bool mp_str_eq(const msgpack_object *o, const char *s) {
        size_t n = strlen(s);

        return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && memcmp(o->via.str.ptr, s, n) == 0;
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

int mp_get_f64(const msgpack_object *map, const char *key, double *ret) {
        const msgpack_object *o = mp_map_get(map, key);

        if (!o)
                return -ENOENT;
        if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
                *ret = o->via.f64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                *ret = (double)o->via.u64;
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                *ret = (double)o->via.i64;
        else
                return -EBADMSG;
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

void mp_pack_kv_f64(msgpack_packer *pk, const char *key, double value) {
        mp_pack_str(pk, key);
        msgpack_pack_double(pk, value);
}

void mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool value) {
        mp_pack_str(pk, key);
        if (value)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
}

void mp_strv_free(char **v) {
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

void mp_strv_free_secret(char **v) {
        if (!v)
                return;
        for (char **p = v; *p; p++) {
                explicit_bzero(*p, strlen(*p));
                free(*p);
        }
        free(v);
}

size_t mp_strv_len(char *const *v) {
        size_t n = 0;

        while (v && v[n])
                n++;
        return n;
}

char **mp_strv_copy(char *const *v) {
        size_t n = mp_strv_len(v);
        char **c;

        if (!v)
                return NULL;
        c = calloc(n + 1, sizeof(char *));
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(v[i]))) {
                        mp_strv_free(c);
                        return NULL;
                }
        return c;
}

int mp_get_strv(const msgpack_object *map, const char *key, char ***ret) {
        const msgpack_object *o = mp_map_get(map, key);
        char **v;
        int r;

        if (!o)
                return -ENOENT;
        if (o->type != MSGPACK_OBJECT_ARRAY)
                return -EBADMSG;
        if (o->via.array.size > MP_STRV_MAX)
                return -EMSGSIZE;
        v = calloc(o->via.array.size + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
                r = mp_str_dup(&o->via.array.ptr[i], MP_STRV_ITEM_MAX, &v[i]);
                if (r < 0) {
                        mp_strv_free(v);
                        return r;
                }
        }
        *ret = v;
        return 0;
}

int mp_get_env(const msgpack_object *map, const char *key, char ***ret) {
        const msgpack_object *o = mp_map_get(map, key);
        char **v;

        if (!o)
                return -ENOENT;
        if (o->type != MSGPACK_OBJECT_MAP)
                return -EBADMSG;
        if (o->via.map.size > MP_STRV_MAX)
                return -EMSGSIZE;
        v = calloc(o->via.map.size + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
                const msgpack_object *k = &o->via.map.ptr[i].key, *val = &o->via.map.ptr[i].val;
                _cleanup_free_ char *ks = NULL, *vs = NULL;
                int r = mp_str_dup(k, 256, &ks);

                if (r >= 0)
                        r = mp_str_dup(val, MP_STRV_ITEM_MAX, &vs);
                if (r >= 0 && (!*ks || strchr(ks, '=')))
                        r = -EBADMSG;
                if (r >= 0 && asprintf(&v[i], "%s=%s", ks, vs) < 0) {
                        v[i] = NULL;
                        r = -ENOMEM;
                }
                if (r < 0) {
                        mp_strv_free(v);
                        return r;
                }
        }
        *ret = v;
        return 0;
}

void mp_pack_kv_strv(msgpack_packer *pk, const char *key, char *const *v) {
        size_t n = mp_strv_len(v);

        mp_pack_str(pk, key);
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++)
                mp_pack_str(pk, v[i]);
}

void mp_pack_kv_env(msgpack_packer *pk, const char *key, char *const *env) {
        size_t n = mp_strv_len(env);

        mp_pack_str(pk, key);
        msgpack_pack_map(pk, n);
        for (size_t i = 0; i < n; i++) {
                const char *eq = strchr(env[i], '=');
                size_t kl = eq ? (size_t)(eq - env[i]) : strlen(env[i]);

                msgpack_pack_str(pk, kl);
                msgpack_pack_str_body(pk, env[i], kl);
                mp_pack_str(pk, eq ? eq + 1 : "");
        }
}

int mp_env_set(char ***env, const char *entry) {
        const char *eq = strchr(entry, '=');
        size_t kl = eq ? (size_t)(eq - entry) : strlen(entry), n = mp_strv_len(*env);
        char *copy = strdup(entry), **nv;

        if (!copy)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (strncmp((*env)[i], entry, kl) == 0 && (*env)[i][kl] == '=') {
                        free((*env)[i]);
                        (*env)[i] = copy;
                        return 0;
                }
        nv = realloc(*env, (n + 2) * sizeof(char *));
        if (!nv) {
                free(copy);
                return -ENOMEM;
        }
        nv[n] = copy;
        nv[n + 1] = NULL;
        *env = nv;
        return 0;
}
