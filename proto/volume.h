/* volume.h: a volume of a deployment and of an instance spec (field `volumes`, see proto/SCHEMA.md). */
#pragma once

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VOLUMES_MAX 16                  /* per deployment */
#define VOLUME_TAG_MAX 36               /* virtio-fs tags are at most 36 bytes */
#define VOLUME_FILES_MAX 256            /* files of one config or secret volume (deployment.resolve's bound) */
#define VOLUME_FILE_NAME_MAX 255        /* one path component */
#define VOLUME_FILE_DATA_MAX (1u << 20) /* bytes of one file */

typedef enum volume_type {
        VOLUME_BIND,   /* a host directory */
        VOLUME_NAMED,  /* a named volume under the state dir (manifest type "volume") */
        VOLUME_CONFIG, /* files rendered from a config entry */
        VOLUME_SECRET, /* files rendered from a secret */
        _VOLUME_TYPE_MAX,
} volume_type_t;

/* One file of a config or secret volume. Its data never leaves instance.create: events,
 * instance.list answers and instance.json carry the volume without its files. */
typedef struct volume_file {
        char *name;    /* one path component */
        uint32_t mode; /* permission bits, e.g. 0400 */
        uint8_t *data;
        size_t size;
} volume_file_t;

typedef struct volume_spec {
        volume_type_t type;
        char *tag;         /* the virtio-fs tag: bind-<i>, vol-<i>, cfg-<i>, sec-<i> */
        char *destination; /* absolute path in the guest */
        bool readonly;
        char *source;         /* bind, volume: the host directory (absolute); config, secret: its name, or NULL */
        volume_file_t *files; /* config, secret */
        size_t n_files;
} volume_spec_t;

/* "bind" | "volume" | "config" | "secret"; NULL for anything else. */
const char *volume_type_to_string(volume_type_t t);
int volume_type_from_string(const char *s, volume_type_t *ret);
/* The tag prefix of a type: "bind", "vol", "cfg", "sec". */
const char *volume_type_tag_prefix(volume_type_t t);
/* [a-z0-9-], 1 to VOLUME_TAG_MAX bytes: tags name sockets and log files too. */
bool volume_tag_valid(const char *tag);
/* One path component, not "." or "..", no '/'. */
bool volume_file_name_valid(const char *name);

void volume_spec_clear(volume_spec_t *v);
void volumes_free(volume_spec_t *v, size_t n);
int volumes_copy(const volume_spec_t *v, size_t n, bool with_files, volume_spec_t **ret);

/* Pack as an array of {type, tag, destination, readonly, source?, files?} maps; files only when
 * with_files (instance.create), never in events, answers or files. */
void volumes_pack(msgpack_packer *pk, const volume_spec_t *v, size_t n, bool with_files);
/* The optional `volumes` key of map o: absent or nil gives none. Bounds: VOLUMES_MAX entries, a
 * valid tag, an absolute destination, source required for bind and volume, files only for
 * config and secret; -EBADMSG on any violation, nothing allocated then. */
int volumes_get(const msgpack_object *map, volume_spec_t **ret, size_t *ret_n);

/* For instance.json: the same without files. NULL on ENOMEM. */
json_t *volumes_to_json(const volume_spec_t *v, size_t n);
int volumes_from_json(const json_t *j, volume_spec_t **ret, size_t *ret_n);
