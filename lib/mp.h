/* mp.h: bounded readers and small writers for msgpack maps with string keys.
 *
 * Every decoder in husk reads wire input through these: they check types and sizes and
 * never trust a length from the wire. Getters return 0 when found, -ENOENT when the key is
 * absent (or nil), -EBADMSG on a wrong type and -EMSGSIZE when a string exceeds max_len. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/util.h"

/* Largest body any husk message may have; decoders refuse bigger input before unpacking. */
#define MP_MAX_MESSAGE_BYTES (4u * 1024u * 1024u)
/* Most msgpack objects (every value, key and container counts one) a body may hold: what it
 * unpacks to is at most this many msgpack_object (24 bytes each), whatever its size. */
#define MP_MAX_MESSAGE_OBJECTS (1u << 20)

/* Check, allocating nothing, that data[0..size) is exactly one well-formed msgpack object of at
 * most MP_MAX_MESSAGE_BYTES bytes and MP_MAX_MESSAGE_OBJECTS objects, nested at most
 * HUSK_NESTING_MAX deep, each container's declared count within the bytes left. Run it before
 * msgpack-c unpacks outside input: msgpack-c allocates a container's entries from its declared
 * count before it reads them (a 5-byte map32 header asks for 100 GiB), and a megabyte of nils
 * becomes 24 MB of objects. -EMSGSIZE too big, -E2BIG too many objects, -ELOOP too deep,
 * -EBADMSG anything else. */
int mp_check(const void *data, size_t size);

const msgpack_object *mp_map_get(const msgpack_object *map, const char *key);

int mp_get_str(const msgpack_object *map, const char *key, size_t max_len, char **ret);
int mp_get_u64(const msgpack_object *map, const char *key, uint64_t *ret);
int mp_get_i64(const msgpack_object *map, const char *key, int64_t *ret);
int mp_get_bool(const msgpack_object *map, const char *key, bool *ret);
/* A number: a msgpack float, or an integer. */
int mp_get_f64(const msgpack_object *map, const char *key, double *ret);
/* Copy a msgpack string object (not a map lookup) into a new NUL-terminated string. */
int mp_str_dup(const msgpack_object *o, size_t max_len, char **ret);
bool mp_str_eq(const msgpack_object *o, const char *s);

/* Writers. A NULL string packs nil. */
void mp_pack_str(msgpack_packer *pk, const char *s);
void mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *value);
void mp_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value);
void mp_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t value);
void mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool value);
void mp_pack_kv_f64(msgpack_packer *pk, const char *key, double value);

/* String vectors (NULL-terminated char **, owned) as msgpack arrays of str, and environments
 * ("KEY=VALUE" vectors) as msgpack maps of str to str. Readers bound the element count and
 * each string; an environment key must be non-empty and hold no '='. */
#define MP_STRV_MAX 1024u       /* elements of an argv or environment */
#define MP_STRV_ITEM_MAX 65536u /* bytes of one argument, or of one value */
void mp_strv_free(char **v);
static inline void mp_strv_freep(char ***v) {
        mp_strv_free(*v);
        *v = NULL;
}
/* The same, each string wiped before it is freed: for vectors that hold secrets. */
void mp_strv_free_secret(char **v);
static inline void mp_strv_free_secretp(char ***v) {
        mp_strv_free_secret(*v);
        *v = NULL;
}
size_t mp_strv_len(char *const *v);
char **mp_strv_copy(char *const *v); /* NULL in, NULL out; NULL on ENOMEM otherwise */
int mp_get_strv(const msgpack_object *map, const char *key, char ***ret);
int mp_get_env(const msgpack_object *map, const char *key, char ***ret);
void mp_pack_kv_strv(msgpack_packer *pk, const char *key, char *const *v);
void mp_pack_kv_env(msgpack_packer *pk, const char *key, char *const *env);
/* Set or replace KEY=VALUE (entry is "KEY=VALUE") in *env; 0 or -ENOMEM. */
int mp_env_set(char ***env, const char *entry);
