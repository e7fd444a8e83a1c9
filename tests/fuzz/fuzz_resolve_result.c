/* fuzz_resolve_result.c: libFuzzer target for the scheduler's decoder of deployment.resolve's answer: any bytes are refused or give bounded files with names that stay in their volume's directory, and what is accepted packs back into the schema's shape and reads back the same. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/resolve.h"
#include "proto/schema.h"

static void check(const resolve_result_t *r) {
        assert(r->n_volumes <= RESOLVE_VOLUMES_MAX);
        for (size_t v = 0; v < r->n_volumes; v++) {
                assert(r->volumes[v].index < RESOLVE_VOLUMES_MAX && r->volumes[v].n_files <= RESOLVE_FILES_MAX);
                for (size_t f = 0; f < r->volumes[v].n_files; f++) {
                        const resolved_file_t *file = &r->volumes[v].files[f];

                        assert(file->name && *file->name && !strchr(file->name, '/') && strcmp(file->name, "..") &&
                               strcmp(file->name, "."));
                        assert(file->mode <= RESOLVE_FILE_MODE_MAX && file->size <= RESOLVE_FILE_DATA_MAX);
                }
        }
        for (size_t k = 0; r->secret_environment && r->secret_environment[k]; k++)
                assert(strchr(r->secret_environment[k], '=') && r->secret_environment[k][0] != '=');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        msgpack_unpacked u, u2;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        resolve_result_t r, again;
        proto_error_t e = {};

        if (mp_check(data, size) < 0)
                return 0;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, (const char *)data, size, NULL) != MSGPACK_UNPACK_SUCCESS) {
                msgpack_unpacked_destroy(&u);
                return 0;
        }
        if (resolve_result_unpack(&u.data, &r) == 0) {
                check(&r);
                msgpack_sbuffer_init(&buf);
                msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
                resolve_result_pack(&pk, &r);
                msgpack_unpacked_init(&u2);
                assert(msgpack_unpack_next(&u2, buf.data, buf.size, NULL) == MSGPACK_UNPACK_SUCCESS);
                assert(proto_check(&proto_msg_resolve_result, &u2.data, PROTO_CHECK_STRICT, &e) == 0);
                assert(resolve_result_unpack(&u2.data, &again) == 0);
                assert(again.generation == r.generation && again.n_volumes == r.n_volumes);
                resolve_result_clear(&again);
                msgpack_unpacked_destroy(&u2);
                msgpack_sbuffer_destroy(&buf);
                resolve_result_clear(&r);
        }
        msgpack_unpacked_destroy(&u);
        return 0;
}
