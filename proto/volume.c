/* volume.c: codec of volume specs (msgpack on the bus, JSON in instance.json). */
#include "proto/volume.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/util.h"

#define PATH_MAX_ 4096

static const char *const type_names[_VOLUME_TYPE_MAX] = {
        [VOLUME_BIND] = "bind",
        [VOLUME_NAMED] = "volume",
        [VOLUME_CONFIG] = "config",
        [VOLUME_SECRET] = "secret",
};

static const char *const tag_prefixes[_VOLUME_TYPE_MAX] = {
        [VOLUME_BIND] = "bind",
        [VOLUME_NAMED] = "vol",
        [VOLUME_CONFIG] = "cfg",
        [VOLUME_SECRET] = "sec",
};

const char *volume_type_to_string(volume_type_t t) { return t < _VOLUME_TYPE_MAX ? type_names[t] : NULL; }

const char *volume_type_tag_prefix(volume_type_t t) { return t < _VOLUME_TYPE_MAX ? tag_prefixes[t] : NULL; }

int volume_type_from_string(const char *s, volume_type_t *ret) {
        for (size_t i = 0; s && i < _VOLUME_TYPE_MAX; i++)
                if (streq(s, type_names[i])) {
                        *ret = (volume_type_t)i;
                        return 0;
                }
        return -EINVAL;
}

bool volume_tag_valid(const char *tag) {
        size_t n = tag ? strlen(tag) : 0;

        if (n == 0 || n > VOLUME_TAG_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((tag[i] >= 'a' && tag[i] <= 'z') || (tag[i] >= '0' && tag[i] <= '9') || tag[i] == '-'))
                        return false;
        return true;
}

bool volume_file_name_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;

        return n > 0 && n <= VOLUME_FILE_NAME_MAX && !strchr(name, '/') && !streq(name, ".") && !streq(name, "..");
}

static bool has_files(volume_type_t t) { return t == VOLUME_CONFIG || t == VOLUME_SECRET; }

void volume_spec_clear(volume_spec_t *v) {
        free(v->tag);
        free(v->destination);
        free(v->source);
        /* A secret's bytes do not outlive their use in freed memory. */
        for (size_t k = 0; k < v->n_files; k++) {
                free(v->files[k].name);
                if (v->files[k].data)
                        explicit_bzero(v->files[k].data, v->files[k].size);
                free(v->files[k].data);
        }
        free(v->files);
        memset(v, 0, sizeof(*v));
}

void volumes_free(volume_spec_t *v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                volume_spec_clear(&v[i]);
        free(v);
}

int volumes_copy(const volume_spec_t *v, size_t n, bool with_files, volume_spec_t **ret) {
        volume_spec_t *a;

        *ret = NULL;
        if (n == 0)
                return 0;
        a = calloc(n, sizeof(*a));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                a[i] = (volume_spec_t){ .type = v[i].type, .readonly = v[i].readonly };
                if (!(a[i].tag = strdup(v[i].tag)) || !(a[i].destination = strdup(v[i].destination)) ||
                    (v[i].source && !(a[i].source = strdup(v[i].source))))
                        goto oom;
                if (!with_files || v[i].n_files == 0)
                        continue;
                if (!(a[i].files = calloc(v[i].n_files, sizeof(volume_file_t))))
                        goto oom;
                a[i].n_files = v[i].n_files;
                for (size_t k = 0; k < v[i].n_files; k++) {
                        volume_file_t *f = &a[i].files[k];

                        f->mode = v[i].files[k].mode;
                        f->size = v[i].files[k].size;
                        if (!(f->name = strdup(v[i].files[k].name)) || !(f->data = malloc(f->size ?: 1)))
                                goto oom;
                        memcpy(f->data, v[i].files[k].data, f->size);
                }
        }
        *ret = a;
        return 0;
oom:
        volumes_free(a, n);
        return -ENOMEM;
}

void volumes_pack(msgpack_packer *pk, const volume_spec_t *v, size_t n, bool with_files) {
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
                bool files = with_files && has_files(v[i].type);

                msgpack_pack_map(pk, 4 + (v[i].source ? 1 : 0) + (files ? 1 : 0));
                mp_pack_kv_str(pk, "type", volume_type_to_string(v[i].type));
                mp_pack_kv_str(pk, "tag", v[i].tag);
                mp_pack_kv_str(pk, "destination", v[i].destination);
                mp_pack_kv_bool(pk, "readonly", v[i].readonly);
                if (v[i].source)
                        mp_pack_kv_str(pk, "source", v[i].source);
                if (!files)
                        continue;
                mp_pack_str(pk, "files");
                msgpack_pack_array(pk, v[i].n_files);
                for (size_t k = 0; k < v[i].n_files; k++) {
                        msgpack_pack_map(pk, 3);
                        mp_pack_kv_str(pk, "name", v[i].files[k].name);
                        mp_pack_kv_u64(pk, "mode", v[i].files[k].mode);
                        mp_pack_str(pk, "data");
                        msgpack_pack_bin(pk, v[i].files[k].size);
                        msgpack_pack_bin_body(pk, v[i].files[k].data, v[i].files[k].size);
                }
        }
}

/* The checks both decoders share, once the strings are in. */
static bool volume_valid(const volume_spec_t *v) {
        if (!volume_tag_valid(v->tag) || !v->destination || v->destination[0] != '/' || streq(v->destination, "/"))
                return false;
        if (has_files(v->type))
                return true; /* source, if any, names the config or secret */
        return v->source && v->source[0] == '/' && v->n_files == 0;
}

static int unpack_files(const msgpack_object *o, volume_spec_t *v) {
        if (!o || o->type == MSGPACK_OBJECT_NIL)
                return 0;
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > VOLUME_FILES_MAX)
                return -EBADMSG;
        if (o->via.array.size == 0)
                return 0;
        v->files = calloc(o->via.array.size, sizeof(volume_file_t));
        if (!v->files)
                return -ENOMEM;
        v->n_files = o->via.array.size;
        for (size_t k = 0; k < v->n_files; k++) {
                const msgpack_object *e = &o->via.array.ptr[k], *data;
                volume_file_t *f = &v->files[k];
                uint64_t mode;

                if (e->type != MSGPACK_OBJECT_MAP || mp_get_str(e, "name", VOLUME_FILE_NAME_MAX, &f->name) < 0 ||
                    !volume_file_name_valid(f->name) || mp_get_u64(e, "mode", &mode) < 0 || mode > 07777)
                        return -EBADMSG;
                f->mode = (uint32_t)mode;
                data = mp_map_get(e, "data");
                if (!data || data->type != MSGPACK_OBJECT_BIN || data->via.bin.size > VOLUME_FILE_DATA_MAX)
                        return -EBADMSG;
                f->size = data->via.bin.size;
                if (!(f->data = malloc(f->size ?: 1)))
                        return -ENOMEM;
                memcpy(f->data, data->via.bin.ptr, f->size);
        }
        return 0;
}

int volumes_get(const msgpack_object *map, volume_spec_t **ret, size_t *ret_n) {
        const msgpack_object *o = mp_map_get(map, "volumes");
        volume_spec_t *a = NULL;
        uint32_t n;

        *ret = NULL;
        *ret_n = 0;
        if (!o || o->type == MSGPACK_OBJECT_NIL)
                return 0;
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > VOLUMES_MAX)
                return -EBADMSG;
        n = o->via.array.size;
        if (n == 0)
                return 0;
        a = calloc(n, sizeof(*a));
        if (!a)
                return -ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
                const msgpack_object *e = &o->via.array.ptr[i];
                _cleanup_free_ char *type = NULL;
                int r;

                if (e->type != MSGPACK_OBJECT_MAP || mp_get_str(e, "type", 16, &type) < 0 ||
                    volume_type_from_string(type, &a[i].type) < 0 ||
                    mp_get_str(e, "tag", VOLUME_TAG_MAX, &a[i].tag) < 0 ||
                    mp_get_str(e, "destination", PATH_MAX_, &a[i].destination) < 0 ||
                    mp_get_bool(e, "readonly", &a[i].readonly) < 0)
                        goto malformed;
                r = mp_get_str(e, "source", PATH_MAX_, &a[i].source);
                if (r < 0 && r != -ENOENT)
                        goto malformed;
                r = unpack_files(mp_map_get(e, "files"), &a[i]);
                if (r == -ENOMEM) {
                        volumes_free(a, n);
                        return r;
                }
                if (r < 0 || !volume_valid(&a[i]))
                        goto malformed;
        }
        *ret = a;
        *ret_n = n;
        return 0;

malformed:
        volumes_free(a, n);
        return -EBADMSG;
}

json_t *volumes_to_json(const volume_spec_t *v, size_t n) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++) {
                json_t *e = json_pack("{s:s,s:s,s:s,s:b}", "type", volume_type_to_string(v[i].type), "tag", v[i].tag,
                                      "destination", v[i].destination, "readonly", v[i].readonly);

                if (e && v[i].source && json_object_set_new(e, "source", json_string(v[i].source)) < 0)
                        json_decref(TAKE_PTR(e));
                if (json_array_append_new(a, e) < 0)
                        json_decref(TAKE_PTR(a));
        }
        return a;
}

static int json_str(const json_t *o, const char *key, size_t max, bool required, char **ret) {
        const json_t *s = json_object_get(o, key);

        if (!s || json_is_null(s))
                return required ? -EBADMSG : 0;
        if (!json_is_string(s) || json_string_length(s) > max || strlen(json_string_value(s)) != json_string_length(s))
                return -EBADMSG;
        *ret = strdup(json_string_value(s));
        return *ret ? 0 : -ENOMEM;
}

int volumes_from_json(const json_t *j, volume_spec_t **ret, size_t *ret_n) {
        volume_spec_t *a = NULL;
        const json_t *e;
        size_t n, i;
        int r = -EBADMSG;

        *ret = NULL;
        *ret_n = 0;
        if (!j || json_is_null(j))
                return 0;
        if (!json_is_array(j) || json_array_size(j) > VOLUMES_MAX)
                return -EBADMSG;
        n = json_array_size(j);
        if (n == 0)
                return 0;
        a = calloc(n, sizeof(*a));
        if (!a)
                return -ENOMEM;
        json_array_foreach(j, i, e) {
                const json_t *ro = json_object_get(e, "readonly");

                if (!json_is_object(e) ||
                    volume_type_from_string(json_string_value(json_object_get(e, "type")), &a[i].type) < 0 ||
                    !json_is_boolean(ro))
                        goto fail;
                a[i].readonly = json_is_true(ro);
                if ((r = json_str(e, "tag", VOLUME_TAG_MAX, true, &a[i].tag)) < 0 ||
                    (r = json_str(e, "destination", PATH_MAX_, true, &a[i].destination)) < 0 ||
                    (r = json_str(e, "source", PATH_MAX_, false, &a[i].source)) < 0)
                        goto fail;
                r = -EBADMSG;
                if (!volume_valid(&a[i]))
                        goto fail;
        }
        *ret = a;
        *ret_n = n;
        return 0;
fail:
        volumes_free(a, n);
        return r;
}
