/* agent_frame.c: length-prefixed msgpack frames between vmm-driver and husk-agent. */
#include "proto/agent_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/nesting.h"

/* The reader never holds more than this. A caller that drains frames after every feed of
 * at most one frame's worth never comes near it; one that does not gets -ENOBUFS rather
 * than an unbounded buffer. */
#define READER_MAX (2u * (4u + AGENT_FRAME_MAX))
#define READER_MIN_CAP 4096u

/* msgpack-c's unpacker has a fixed nesting stack of this depth; deeper input is malformed. */

void agent_frame_reader_init(agent_frame_reader_t *r) { *r = (agent_frame_reader_t){ 0 }; }

void agent_frame_reader_clear(agent_frame_reader_t *r) {
        free(r->buf);
        agent_frame_reader_init(r);
}

int agent_frame_reader_feed(agent_frame_reader_t *r, const void *data, size_t size) {
        if (size == 0)
                return 0;
        if (size > READER_MAX - r->len)
                return -ENOBUFS;
        if (r->len + size > r->cap) {
                size_t cap = r->cap ? r->cap : READER_MIN_CAP;
                uint8_t *p;

                while (cap < r->len + size)
                        cap *= 2;
                if (cap > READER_MAX)
                        cap = READER_MAX;
                p = realloc(r->buf, cap);
                if (!p)
                        return -ENOMEM;
                r->buf = p;
                r->cap = cap;
        }
        memcpy(r->buf + r->len, data, size);
        r->len += size;
        return 0;
}

static uint32_t be32(const uint8_t *p) {
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Size of the msgpack header at p and what follows it: payload bytes to skip and child
 * objects to read. Returns the header size, or 0 when the byte is not a valid type (0xc1)
 * or the header runs past end. */
static size_t mp_header(const uint8_t *p, const uint8_t *end, uint64_t *payload, uint64_t *children) {
        uint8_t b = p[0];
        size_t lenbytes = 0, extra = 0; /* width of an explicit length; fixed bytes after it */
        bool counted_map = false, counted_array = false;

        *payload = 0;
        *children = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
                return 1;
        if ((b & 0xf0) == 0x80) {
                *children = 2u * (b & 0x0f);
                return 1;
        }
        if ((b & 0xf0) == 0x90) {
                *children = b & 0x0f;
                return 1;
        }
        if ((b & 0xe0) == 0xa0) {
                *payload = b & 0x1f;
                return 1;
        }
        switch (b) {
        case 0xcc:
        case 0xd0:
                *payload = 1;
                return 1;
        case 0xcd:
        case 0xd1:
                *payload = 2;
                return 1;
        case 0xca:
        case 0xce:
        case 0xd2:
                *payload = 4;
                return 1;
        case 0xcb:
        case 0xcf:
        case 0xd3:
                *payload = 8;
                return 1;
        case 0xd4:
                *payload = 1 + 1;
                return 1; /* fixext: type byte + data */
        case 0xd5:
                *payload = 1 + 2;
                return 1;
        case 0xd6:
                *payload = 1 + 4;
                return 1;
        case 0xd7:
                *payload = 1 + 8;
                return 1;
        case 0xd8:
                *payload = 1 + 16;
                return 1;
        case 0xc4:
        case 0xd9:
                lenbytes = 1;
                break; /* bin8, str8 */
        case 0xc5:
        case 0xda:
                lenbytes = 2;
                break; /* bin16, str16 */
        case 0xc6:
        case 0xdb:
                lenbytes = 4;
                break; /* bin32, str32 */
        case 0xc7:
                lenbytes = 1;
                extra = 1;
                break; /* ext8 */
        case 0xc8:
                lenbytes = 2;
                extra = 1;
                break; /* ext16 */
        case 0xc9:
                lenbytes = 4;
                extra = 1;
                break; /* ext32 */
        case 0xdc:
                lenbytes = 2;
                counted_array = true;
                break; /* array16 */
        case 0xdd:
                lenbytes = 4;
                counted_array = true;
                break; /* array32 */
        case 0xde:
                lenbytes = 2;
                counted_map = true;
                break; /* map16 */
        case 0xdf:
                lenbytes = 4;
                counted_map = true;
                break; /* map32 */
        default:
                return 0; /* 0xc1: never used */
        }
        if ((size_t)(end - p) < 1 + lenbytes)
                return 0;

        uint64_t n = 0;
        for (size_t i = 0; i < lenbytes; i++)
                n = n << 8 | p[1 + i];
        if (counted_array)
                *children = n;
        else if (counted_map)
                *children = 2 * n;
        else
                *payload = n + extra;
        return 1 + lenbytes;
}

/* Walk the encoding of one object without allocating: every announced length and element
 * count must fit in the bytes that are actually there, and the object must end exactly at
 * the end of the body. This is what keeps a 1 MiB frame from making msgpack-c allocate
 * gigabytes for an array that claims 4 billion elements. */
static int body_check(const uint8_t *p, size_t size) {
        const uint8_t *end = p + size;
        uint64_t pending[HUSK_NESTING_MAX + 1]; /* objects still to read at each nesting level */
        size_t depth = 0;

        if (size == 0 || ((p[0] & 0xf0) != 0x80 && p[0] != 0xde && p[0] != 0xdf))
                return -EBADMSG;
        pending[0] = 1;
        while (depth > 0 || pending[0] > 0) {
                uint64_t payload, children;
                size_t hdr;

                if (pending[depth] == 0) {
                        depth--;
                        continue;
                }
                if (p >= end)
                        return -EBADMSG;
                hdr = mp_header(p, end, &payload, &children);
                if (hdr == 0 || payload > (uint64_t)(end - p) - hdr)
                        return -EBADMSG;
                p += hdr + payload;
                pending[depth]--;
                if (children > 0) {
                        /* Every child takes at least one byte. */
                        if (children > (uint64_t)(end - p) || depth + 1 >= HUSK_NESTING_MAX)
                                return -EBADMSG;
                        pending[++depth] = children;
                }
        }
        return p == end ? 0 : -EBADMSG;
}

int agent_frame_reader_next(agent_frame_reader_t *r, msgpack_unpacked *ret) {
        msgpack_zone *zone = NULL;
        msgpack_object obj;
        const msgpack_object *type;
        size_t off = 0;
        uint32_t n;
        char *body;

        msgpack_unpacked_init(ret);
        if (r->len < 4)
                return 0;
        n = be32(r->buf);
        if (n > AGENT_FRAME_MAX)
                return -EMSGSIZE;
        if (r->len - 4 < n)
                return 0;

        if (body_check(r->buf + 4, n) < 0)
                goto malformed;

        /* msgpack-c points strings into the input: give the body a home in the result's
         * zone so the object outlives this buffer's next compaction. */
        zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
        if (!zone)
                return -ENOMEM;
        body = msgpack_zone_malloc(zone, n ? n : 1);
        if (!body) {
                msgpack_zone_free(zone);
                return -ENOMEM;
        }
        memcpy(body, r->buf + 4, n);
        if (mp_check(body, n) < 0 || msgpack_unpack(body, n, &off, zone, &obj) != MSGPACK_UNPACK_SUCCESS || off != n)
                goto malformed;
        if (obj.type != MSGPACK_OBJECT_MAP)
                goto malformed;
        type = mp_map_get(&obj, "type");
        if (!type || type->type != MSGPACK_OBJECT_STR)
                goto malformed;

        memmove(r->buf, r->buf + 4 + n, r->len - 4 - n);
        r->len -= 4 + (size_t)n;
        ret->zone = zone;
        ret->data = obj;
        return 1;

malformed:
        if (zone)
                msgpack_zone_free(zone);
        return -EBADMSG;
}

int agent_frame_encode(const void *body, size_t size, msgpack_sbuffer *out) {
        uint8_t hdr[4];

        if (size > AGENT_FRAME_MAX)
                return -EMSGSIZE;
        hdr[0] = (uint8_t)(size >> 24);
        hdr[1] = (uint8_t)(size >> 16);
        hdr[2] = (uint8_t)(size >> 8);
        hdr[3] = (uint8_t)size;
        if (msgpack_sbuffer_write(out, (const char *)hdr, sizeof(hdr)) < 0 ||
            msgpack_sbuffer_write(out, body, size) < 0)
                return -ENOMEM;
        return 0;
}
