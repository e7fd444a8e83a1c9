/* resolve.c: msgpack codec of deployment.resolve's answer. */
#include "proto/resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"

static void file_clear(resolved_file_t *f) {
        free(f->name);
        if (f->data)
                explicit_bzero(f->data, f->size);
        free(f->data);
        *f = (resolved_file_t){};
}

void resolve_result_clear(resolve_result_t *r) {
        mp_strv_free_secret(r->secret_environment);
        for (size_t v = 0; v < r->n_volumes; v++) {
                for (size_t f = 0; f < r->volumes[v].n_files; f++)
                        file_clear(&r->volumes[v].files[f]);
                free(r->volumes[v].files);
        }
        free(r->volumes);
        *r = (resolve_result_t){};
}

void resolve_result_pack(msgpack_packer *pk, const resolve_result_t *r) {
        msgpack_pack_map(pk, 1 + (r->secret_environment ? 1 : 0) + (r->n_volumes ? 1 : 0));
        mp_pack_kv_u64(pk, "generation", r->generation);
        if (r->secret_environment)
                mp_pack_kv_env(pk, "secret_environment", r->secret_environment);
        if (!r->n_volumes)
                return;
        mp_pack_str(pk, "volumes");
        msgpack_pack_array(pk, r->n_volumes);
        for (size_t v = 0; v < r->n_volumes; v++) {
                msgpack_pack_map(pk, 2);
                mp_pack_kv_u64(pk, "index", r->volumes[v].index);
                mp_pack_str(pk, "files");
                msgpack_pack_array(pk, r->volumes[v].n_files);
                for (size_t f = 0; f < r->volumes[v].n_files; f++) {
                        const resolved_file_t *file = &r->volumes[v].files[f];

                        msgpack_pack_map(pk, 3);
                        mp_pack_kv_str(pk, "name", file->name);
                        mp_pack_kv_u64(pk, "mode", file->mode);
                        mp_pack_str(pk, "data");
                        msgpack_pack_bin(pk, file->size);
                        msgpack_pack_bin_body(pk, file->data, file->size);
                }
        }
}

static bool file_name_ok(const char *n) { return *n && !strchr(n, '/') && strcmp(n, ".") != 0 && strcmp(n, "..") != 0; }

static int file_unpack(const msgpack_object *o, resolved_file_t *f) {
        const msgpack_object *data = mp_map_get(o, "data");
        uint64_t mode;

        if (o->type != MSGPACK_OBJECT_MAP || mp_get_str(o, "name", RESOLVE_FILE_NAME_MAX, &f->name) < 0 ||
            !file_name_ok(f->name) || mp_get_u64(o, "mode", &mode) < 0 || mode > RESOLVE_FILE_MODE_MAX || !data ||
            data->type != MSGPACK_OBJECT_BIN || data->via.bin.size > RESOLVE_FILE_DATA_MAX)
                return -EBADMSG;
        f->mode = (uint32_t)mode;
        f->size = data->via.bin.size;
        f->data = malloc(f->size ? f->size : 1);
        if (!f->data)
                return -ENOMEM;
        memcpy(f->data, data->via.bin.ptr, f->size);
        return 0;
}

static int volume_unpack(const msgpack_object *o, resolved_volume_t *v) {
        const msgpack_object *files = mp_map_get(o, "files");
        uint64_t index;

        if (o->type != MSGPACK_OBJECT_MAP || mp_get_u64(o, "index", &index) < 0 || index >= RESOLVE_VOLUMES_MAX ||
            !files || files->type != MSGPACK_OBJECT_ARRAY || files->via.array.size > RESOLVE_FILES_MAX)
                return -EBADMSG;
        v->index = (uint32_t)index;
        v->files = calloc(files->via.array.size ? files->via.array.size : 1, sizeof(*v->files));
        if (!v->files)
                return -ENOMEM;
        for (uint32_t k = 0; k < files->via.array.size; k++) {
                int r = file_unpack(&files->via.array.ptr[k], &v->files[v->n_files++]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int resolve_result_unpack(const msgpack_object *o, resolve_result_t *r) {
        const msgpack_object *volumes;
        int k;

        *r = (resolve_result_t){};
        if (!o || o->type != MSGPACK_OBJECT_MAP || mp_get_u64(o, "generation", &r->generation) < 0)
                goto malformed;
        k = mp_get_env(o, "secret_environment", &r->secret_environment);
        if (k < 0 && k != -ENOENT)
                goto malformed;
        volumes = mp_map_get(o, "volumes");
        if (volumes && volumes->type != MSGPACK_OBJECT_NIL) {
                if (volumes->type != MSGPACK_OBJECT_ARRAY || volumes->via.array.size > RESOLVE_VOLUMES_MAX)
                        goto malformed;
                r->volumes = calloc(volumes->via.array.size ? volumes->via.array.size : 1, sizeof(*r->volumes));
                if (!r->volumes)
                        goto malformed;
                for (uint32_t v = 0; v < volumes->via.array.size; v++)
                        if (volume_unpack(&volumes->via.array.ptr[v], &r->volumes[r->n_volumes++]) < 0)
                                goto malformed;
        }
        return 0;

malformed:
        resolve_result_clear(r);
        return -EBADMSG;
}
