/* fuzz_agent_frame.c: libFuzzer target for the agent frame reader, fed in random chunks, and the request decoders run on every frame it hands out. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/agent_frame.h"
#include "proto/instance.h"

static void check_strv(char **v, size_t max_items) {
        size_t n = 0;

        for (; v[n]; n++)
                assert(strlen(v[n]) <= MP_STRV_ITEM_MAX);
        assert(n <= max_items);
}

/* What husk-agent (start, exec, signal) and vmm-driver (instance.create, instance.exec) decode
 * from a body: whatever the input, each getter either fails or returns bounded, NUL-free
 * strings, and an environment only KEY=VALUE entries with a non-empty key. */
static void decode_requests(const msgpack_object *body) {
        static const char *const str_keys[] = { "mode", "tag", "hostname", "kind", "cwd", "code", "message", "agent" };
        static const char *const u64_keys[] = { "id", "timeout_ms", "signal", "grace_ms", "version", "pid" };
        char **v = NULL, *str = NULL;
        instance_spec_t spec;
        uint64_t u;
        int64_t i;
        bool b;

        if (mp_get_strv(body, "argv", &v) == 0) {
                check_strv(v, MP_STRV_MAX);
                mp_strv_free(v);
        }
        if (mp_get_strv(body, "command", &v) == 0) {
                check_strv(v, MP_STRV_MAX);
                mp_strv_free(v);
        }
        if (mp_get_env(body, "env", &v) == 0) {
                check_strv(v, MP_STRV_MAX);
                for (size_t k = 0; v[k]; k++)
                        assert(strchr(v[k], '=') && v[k][0] != '=');
                mp_strv_free(v);
        }
        for (size_t k = 0; k < sizeof(str_keys) / sizeof(str_keys[0]); k++)
                if (mp_get_str(body, str_keys[k], 4096, &str) == 0) {
                        assert(strlen(str) <= 4096);
                        free(str);
                }
        for (size_t k = 0; k < sizeof(u64_keys) / sizeof(u64_keys[0]); k++)
                (void)mp_get_u64(body, u64_keys[k], &u);
        (void)mp_get_i64(body, "status", &i);
        (void)mp_get_i64(body, "exit_status", &i);
        (void)mp_get_bool(body, "ready", &b);
        if (instance_spec_unpack(body, &spec) == 0)
                instance_spec_clear(&spec);
}

/* The first bytes choose chunk sizes so that frame boundaries fall everywhere: each byte
 * is the size of the next chunk (0 means "the rest"). The remaining bytes are the stream. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        agent_frame_reader_t r;
        const uint8_t *sizes, *stream;
        size_t nsizes, si = 0;

        if (size < 1)
                return 0;
        nsizes = data[0] % 16;
        if (size < 1 + nsizes)
                return 0;
        sizes = data + 1;
        stream = data + 1 + nsizes;
        size -= 1 + nsizes;

        agent_frame_reader_init(&r);
        while (size > 0) {
                size_t chunk = nsizes ? sizes[si++ % nsizes] : 0;
                msgpack_unpacked u;
                int ret;

                if (chunk == 0 || chunk > size)
                        chunk = size;
                ret = agent_frame_reader_feed(&r, stream, chunk);
                assert(ret == 0);
                stream += chunk;
                size -= chunk;

                while ((ret = agent_frame_reader_next(&r, &u)) == 1) {
                        const msgpack_object *type = mp_map_get(&u.data, "type");

                        /* What the reader hands out is what agent_frame.h promises. */
                        assert(u.data.type == MSGPACK_OBJECT_MAP);
                        assert(type && type->type == MSGPACK_OBJECT_STR);
                        decode_requests(&u.data);

                        /* Round trip: re-encoding and reading back must succeed. */
                        msgpack_sbuffer body, frame;
                        msgpack_packer pk;
                        agent_frame_reader_t r2;
                        msgpack_unpacked u2;

                        msgpack_sbuffer_init(&body);
                        msgpack_sbuffer_init(&frame);
                        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
                        msgpack_pack_object(&pk, u.data);
                        if (agent_frame_encode(body.data, body.size, &frame) == 0) {
                                agent_frame_reader_init(&r2);
                                assert(agent_frame_reader_feed(&r2, frame.data, frame.size) == 0);
                                assert(agent_frame_reader_next(&r2, &u2) == 1);
                                msgpack_unpacked_destroy(&u2);
                                agent_frame_reader_clear(&r2);
                        }
                        msgpack_sbuffer_destroy(&frame);
                        msgpack_sbuffer_destroy(&body);
                        msgpack_unpacked_destroy(&u);
                }
                if (ret < 0) {
                        /* After an error the stream is out of sync: the caller closes it. */
                        assert(ret == -EBADMSG || ret == -EMSGSIZE);
                        break;
                }
        }
        agent_frame_reader_clear(&r);
        return 0;
}
