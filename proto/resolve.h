/* resolve.h: the answer of deployment.resolve (see proto/SCHEMA.md): a new instance's secret
 * environment and the files of its config and secret volumes. Every byte may be secret: the
 * clear function wipes before it frees. */
#pragma once

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/volume.h"

#define RESOLVE_VOLUMES_MAX 64
#define RESOLVE_FILES_MAX 256
#define RESOLVE_FILE_NAME_MAX 253
#define RESOLVE_FILE_DATA_MAX 262144
#define RESOLVE_FILE_MODE_MAX 0777

/* A file of a config or secret volume, as the instance spec carries it: name (no '/', not "."
 * or ".."), mode (0444 for a config's, 0400 for a secret's), data. One type: the scheduler hands
 * the files from this answer to instance.create as they are. */
typedef volume_file_t resolved_file_t;

/* The files of the spec's volumes[index] (a config or secret volume). */
typedef struct resolved_volume {
        uint32_t index;
        resolved_file_t *files;
        size_t n_files;
} resolved_volume_t;

typedef struct resolve_result {
        uint64_t generation;
        char **secret_environment; /* "KEY=VALUE"; NULL: none */
        resolved_volume_t *volumes;
        size_t n_volumes;
} resolve_result_t;

void resolve_result_clear(resolve_result_t *r);
void resolve_result_pack(msgpack_packer *pk, const resolve_result_t *r);
/* -EBADMSG (and *r cleared) for anything that is not such an answer within the bounds above. */
int resolve_result_unpack(const msgpack_object *o, resolve_result_t *r);
