/* test_agent_frame.c: golden bytes and malformed input for the agent frame codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/agent_frame.h"

/* {"type":"ping","id":7} as msgpack-c packs it, behind its big-endian length. */
static const uint8_t golden_ping[] = {
        0x00, 0x00, 0x00, 0x0f, /* length 15 */
        0x82,                   /* fixmap, 2 pairs */
        0xa4, 't',  'y',  'p',  'e', 0xa4, 'p', 'i', 'n', 'g', 0xa2, 'i', 'd', 0x07,
};

static void pack_ping(msgpack_sbuffer *frame, uint64_t id) {
        msgpack_sbuffer body;
        msgpack_packer pk;

        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_str(&pk, "type", "ping");
        mp_pack_kv_u64(&pk, "id", id);
        assert_int_equal(agent_frame_encode(body.data, body.size, frame), 0);
        msgpack_sbuffer_destroy(&body);
}

static void assert_ping(const msgpack_unpacked *u, uint64_t want_id) {
        uint64_t id = 0;

        assert_true(mp_str_eq(mp_map_get(&u->data, "type"), "ping"));
        assert_int_equal(mp_get_u64(&u->data, "id", &id), 0);
        assert_int_equal(id, want_id);
}

/* Feed raw bytes (length prefix included) and return what next() says about them. */
static int feed_and_next(const void *bytes, size_t size) {
        agent_frame_reader_t r;
        msgpack_unpacked u;
        int ret;

        agent_frame_reader_init(&r);
        assert_int_equal(agent_frame_reader_feed(&r, bytes, size), 0);
        ret = agent_frame_reader_next(&r, &u);
        msgpack_unpacked_destroy(&u);
        agent_frame_reader_clear(&r);
        return ret;
}

/* A body behind a correct length prefix. */
static int body_verdict(const void *body, size_t size) {
        msgpack_sbuffer frame;
        int ret;

        msgpack_sbuffer_init(&frame);
        assert_int_equal(agent_frame_encode(body, size, &frame), 0);
        ret = feed_and_next(frame.data, frame.size);
        msgpack_sbuffer_destroy(&frame);
        return ret;
}

static void test_encode_golden(void **state) {
        msgpack_sbuffer frame;

        msgpack_sbuffer_init(&frame);
        pack_ping(&frame, 7);
        assert_int_equal(frame.size, sizeof(golden_ping));
        assert_memory_equal(frame.data, golden_ping, sizeof(golden_ping));
        msgpack_sbuffer_destroy(&frame);
}

static void test_decode_golden(void **state) {
        agent_frame_reader_t r;
        msgpack_unpacked u;

        agent_frame_reader_init(&r);
        assert_int_equal(agent_frame_reader_feed(&r, golden_ping, sizeof(golden_ping)), 0);
        assert_int_equal(agent_frame_reader_next(&r, &u), 1);
        assert_int_equal(r.len, 0);
        /* The object must survive the reader being reused and freed. */
        assert_int_equal(agent_frame_reader_feed(&r, "\0\0\0", 3), 0);
        agent_frame_reader_clear(&r);
        assert_ping(&u, 7);
        msgpack_unpacked_destroy(&u);
}

static void test_split_byte_by_byte(void **state) {
        agent_frame_reader_t r;
        msgpack_unpacked u;

        agent_frame_reader_init(&r);
        for (size_t i = 0; i < sizeof(golden_ping) - 1; i++) {
                assert_int_equal(agent_frame_reader_feed(&r, &golden_ping[i], 1), 0);
                assert_int_equal(agent_frame_reader_next(&r, &u), 0);
        }
        assert_int_equal(agent_frame_reader_feed(&r, &golden_ping[sizeof(golden_ping) - 1], 1), 0);
        assert_int_equal(agent_frame_reader_next(&r, &u), 1);
        assert_ping(&u, 7);
        msgpack_unpacked_destroy(&u);
        assert_int_equal(agent_frame_reader_next(&r, &u), 0);
        agent_frame_reader_clear(&r);
}

static void test_two_frames_one_feed(void **state) {
        agent_frame_reader_t r;
        msgpack_sbuffer frames;
        msgpack_unpacked u;

        msgpack_sbuffer_init(&frames);
        pack_ping(&frames, 1);
        pack_ping(&frames, 2);
        /* and half of a third one */
        msgpack_sbuffer_write(&frames, (const char *)golden_ping, 6);

        agent_frame_reader_init(&r);
        assert_int_equal(agent_frame_reader_feed(&r, frames.data, frames.size), 0);
        assert_int_equal(agent_frame_reader_next(&r, &u), 1);
        assert_ping(&u, 1);
        msgpack_unpacked_destroy(&u);
        assert_int_equal(agent_frame_reader_next(&r, &u), 1);
        assert_ping(&u, 2);
        msgpack_unpacked_destroy(&u);
        assert_int_equal(agent_frame_reader_next(&r, &u), 0);
        assert_int_equal(r.len, 6);

        assert_int_equal(agent_frame_reader_feed(&r, golden_ping + 6, sizeof(golden_ping) - 6), 0);
        assert_int_equal(agent_frame_reader_next(&r, &u), 1);
        assert_ping(&u, 7);
        msgpack_unpacked_destroy(&u);
        agent_frame_reader_clear(&r);
        msgpack_sbuffer_destroy(&frames);
}

static void test_oversized_length(void **state) {
        /* Refused from the prefix alone: the reader must not wait for 16 MiB to arrive. */
        static const uint8_t huge[] = { 0x01, 0x00, 0x00, 0x00, 0x82 };
        static const uint8_t max_plus_one[] = { 0x00, 0x30, 0x00, 0x01 };
        static const uint8_t all_ones[] = { 0xff, 0xff, 0xff, 0xff };

        assert_int_equal(feed_and_next(huge, sizeof(huge)), -EMSGSIZE);
        assert_int_equal(feed_and_next(max_plus_one, sizeof(max_plus_one)), -EMSGSIZE);
        assert_int_equal(feed_and_next(all_ones, sizeof(all_ones)), -EMSGSIZE);

        /* Exactly AGENT_FRAME_MAX is allowed by the prefix: more bytes are awaited. */
        static const uint8_t max[] = { 0x00, 0x10, 0x00, 0x00 };
        assert_int_equal(feed_and_next(max, sizeof(max)), 0);

        /* The encoder refuses what the reader would refuse. */
        msgpack_sbuffer out;
        msgpack_sbuffer_init(&out);
        assert_int_equal(agent_frame_encode("", AGENT_FRAME_MAX + 1, &out), -EMSGSIZE);
        assert_int_equal(out.size, 0);
        msgpack_sbuffer_destroy(&out);
}

static void test_largest_frame(void **state) {
        /* {"type": "x", "pad": <bin32 filling the frame to exactly AGENT_FRAME_MAX>} */
        static const uint8_t head[] = { 0x82, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x', 0xa3, 'p', 'a', 'd', 0xc6 };
        size_t pad = AGENT_FRAME_MAX - sizeof(head) - 4;
        uint8_t *body = calloc(1, AGENT_FRAME_MAX);

        assert_non_null(body);
        memcpy(body, head, sizeof(head));
        body[sizeof(head) + 0] = (uint8_t)(pad >> 24);
        body[sizeof(head) + 1] = (uint8_t)(pad >> 16);
        body[sizeof(head) + 2] = (uint8_t)(pad >> 8);
        body[sizeof(head) + 3] = (uint8_t)pad;
        assert_int_equal(body_verdict(body, AGENT_FRAME_MAX), 1);
        free(body);
}

static void test_non_map_body(void **state) {
        static const uint8_t array[] = { 0x92, 0xa4, 't', 'y', 'p', 'e', 0x01 };
        static const uint8_t str[] = { 0xa4, 'p', 'i', 'n', 'g' };
        static const uint8_t nil[] = { 0xc0 };

        assert_int_equal(body_verdict(array, sizeof(array)), -EBADMSG);
        assert_int_equal(body_verdict(str, sizeof(str)), -EBADMSG);
        assert_int_equal(body_verdict(nil, sizeof(nil)), -EBADMSG);
        assert_int_equal(body_verdict("", 0), -EBADMSG);
}

static void test_map_without_type(void **state) {
        static const uint8_t no_type[] = { 0x81, 0xa2, 'i', 'd', 0x07 };
        static const uint8_t empty_map[] = { 0x80 };
        static const uint8_t int_type[] = { 0x81, 0xa4, 't', 'y', 'p', 'e', 0x07 };
        static const uint8_t nil_type[] = { 0x81, 0xa4, 't', 'y', 'p', 'e', 0xc0 };
        static const uint8_t bin_type[] = { 0x81, 0xa4, 't', 'y', 'p', 'e', 0xc4, 0x01, 'x' };

        assert_int_equal(body_verdict(no_type, sizeof(no_type)), -EBADMSG);
        assert_int_equal(body_verdict(empty_map, sizeof(empty_map)), -EBADMSG);
        assert_int_equal(body_verdict(int_type, sizeof(int_type)), -EBADMSG);
        assert_int_equal(body_verdict(nil_type, sizeof(nil_type)), -EBADMSG);
        assert_int_equal(body_verdict(bin_type, sizeof(bin_type)), -EBADMSG);
}

static void test_trailing_garbage(void **state) {
        uint8_t frame[sizeof(golden_ping) + 1];

        /* One more byte inside the announced length than the map needs. */
        memcpy(frame, golden_ping, sizeof(golden_ping));
        frame[3] = 0x10;
        frame[sizeof(golden_ping)] = 0xc0;
        assert_int_equal(feed_and_next(frame, sizeof(frame)), -EBADMSG);

        /* Two maps in one body. */
        static const uint8_t two_maps[] = { 0x81, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x', 0x80 };
        assert_int_equal(body_verdict(two_maps, sizeof(two_maps)), -EBADMSG);
}

static void test_truncated_body(void **state) {
        /* The map claims more than the frame holds. */
        static const uint8_t short_map[] = { 0x83, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x' };
        static const uint8_t short_str[] = { 0x81, 0xa4, 't', 'y', 'p', 'e', 0xa9, 'x' };
        static const uint8_t reserved[] = { 0x81, 0xa4, 't', 'y', 'p', 'e', 0xc1 };

        assert_int_equal(body_verdict(short_map, sizeof(short_map)), -EBADMSG);
        assert_int_equal(body_verdict(short_str, sizeof(short_str)), -EBADMSG);
        assert_int_equal(body_verdict(reserved, sizeof(reserved)), -EBADMSG);
}

static void test_lying_counts(void **state) {
        /* A map32/array32/str32 announcing ~4 billion entries in a few bytes must be refused
         * before anything is allocated for them. */
        static const uint8_t map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa4, 't', 'y', 'p', 'e' };
        static const uint8_t arr32[] = { 0x82, 0xa4, 't',  'y',  'p',  'e',  0xa1, 'x',
                                         0xa1, 'a',  0xdd, 0xff, 0xff, 0xff, 0xff, 0x00 };
        static const uint8_t str32[] = { 0x82, 0xa4, 't',  'y',  'p',  'e',  0xa1, 'x',
                                         0xa1, 'a',  0xdb, 0xff, 0xff, 0xff, 0xff, 0x00 };

        assert_int_equal(body_verdict(map32, sizeof(map32)), -EBADMSG);
        assert_int_equal(body_verdict(arr32, sizeof(arr32)), -EBADMSG);
        assert_int_equal(body_verdict(str32, sizeof(str32)), -EBADMSG);
}

static void test_nesting(void **state) {
        /* {"type":"x","a":[[[...]]]}: 20 levels are fine, 100 are refused. */
        uint8_t body[160] = { 0x82, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x', 0xa1, 'a' };
        size_t n = 10;

        for (size_t i = 0; i < 20; i++)
                body[n++] = 0x91;
        body[n++] = 0x00;
        assert_int_equal(body_verdict(body, n), 1);

        n = 10;
        for (size_t i = 0; i < 100; i++)
                body[n++] = 0x91;
        body[n++] = 0x00;
        assert_int_equal(body_verdict(body, n), -EBADMSG);
}

static void test_unknown_keys_and_types(void **state) {
        /* Every msgpack type is accepted in a value; the frame only cares about "type". */
        static const uint8_t body[] = {
                0x8a, 0xa4, 't',  'y',  'p',  'e',  0xa5, 'h', 'e', 'l', 'l', 'o',
                0xa1, 'a',  0xcb, 0x3f, 0xf0, 0,    0,    0,   0,   0,   0, /* float64 1.0 */
                0xa1, 'b',  0xd4, 0x01, 0x02,                               /* fixext1 */
                0xa1, 'c',  0xc7, 0x02, 0x05, 'x',  'y',                    /* ext8 */
                0xa1, 'd',  0xde, 0x00, 0x01, 0x01, 0xc3,                   /* map16 {1: true} */
                0xa1, 'e',  0xdc, 0x00, 0x02, 0xff, 0xd3, 1,   2,   3,   4,   5,
                6,    7,    8,    0xa1, 'f',  0xc4, 0x00, /* empty bin8 */
                0xa1, 'g',  0xd9, 0x01, 'z',              /* str8 */
                0xa1, 'h',  0x90,                         /* empty array */
                0xa1, 'i',  0xc2,                         /* false */
        };

        assert_int_equal(body_verdict(body, sizeof(body)), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_encode_golden),          cmocka_unit_test(test_decode_golden),
                cmocka_unit_test(test_split_byte_by_byte),     cmocka_unit_test(test_two_frames_one_feed),
                cmocka_unit_test(test_oversized_length),       cmocka_unit_test(test_largest_frame),
                cmocka_unit_test(test_non_map_body),           cmocka_unit_test(test_map_without_type),
                cmocka_unit_test(test_trailing_garbage),       cmocka_unit_test(test_truncated_body),
                cmocka_unit_test(test_lying_counts),           cmocka_unit_test(test_nesting),
                cmocka_unit_test(test_unknown_keys_and_types),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
