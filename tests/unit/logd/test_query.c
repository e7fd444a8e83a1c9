/* test_query.c: logs.query over real stores: tail across instances and rotated files, level and since filters, pages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/util.h"
#include "services/logd/logd.h"

typedef struct fixture {
        char root[64];
        char dir[2][PATH_MAX];
        logd_query_source_t src[2];
} fixture_t;

#define A "aaaaaaaaaaaa"
#define B "bbbbbbbbbbbb"

/* Instance A logs at even ms, B at odd ms; every 5th line of each is a warning, every 10th an
 * error. Small files: the history spans many rotations. */
static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));
        static const char *const ids[2] = { A, B };

        snprintf(f->root, sizeof(f->root), "/tmp/husk-test-query-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        for (int k = 0; k < 2; k++) {
                logd_store_t s;

                snprintf(f->dir[k], PATH_MAX, "%s/%s", f->root, ids[k]);
                assert_int_equal(logd_store_open(&s, f->dir[k], 4096, 50), 0);
                for (uint64_t n = 1; n <= 1000; n++) {
                        char msg[64];
                        logd_entry_t e = { .ts = 10000 + 2 * n + (uint64_t)k,
                                           .seq = n * 100,
                                           .message = msg,
                                           .level = n % 10 == 0  ? LOGD_LEVEL_ERROR
                                                    : n % 5 == 0 ? LOGD_LEVEL_WARNING
                                                                 : LOGD_LEVEL_INFO };
                        e.message_len = (size_t)snprintf(msg, sizeof(msg), "%s line %" PRIu64, ids[k], n);
                        assert_int_equal(logd_store_append(&s, &e), 0);
                }
                logd_store_close(&s);
                f->src[k] = (logd_query_source_t){ .instance = ids[k], .dir = f->dir[k], .backups = 50 };
        }
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;

        rm_rf(f->root);
        free(f);
        return 0;
}

typedef struct page {
        msgpack_sbuffer buf;
        msgpack_unpacked u;
        const msgpack_object *entries;
        const msgpack_object *cursor;
        bool more;
} page_t;

static void run(fixture_t *f, const logd_query_t *q, page_t *p) {
        msgpack_packer pk;
        size_t off = 0;

        msgpack_sbuffer_init(&p->buf);
        msgpack_packer_init(&pk, &p->buf, msgpack_sbuffer_write);
        assert_int_equal(logd_query_run(q, f->src, 2, &pk), 0);
        msgpack_unpacked_init(&p->u);
        assert_int_equal(msgpack_unpack_next(&p->u, p->buf.data, p->buf.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, p->buf.size);
        p->entries = mp_map_get(&p->u.data, "entries");
        p->cursor = mp_map_get(&p->u.data, "cursor");
        assert_non_null(p->entries);
        assert_int_equal(p->entries->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(mp_get_bool(&p->u.data, "more", &p->more), 0);
}

static void page_clear(page_t *p) {
        msgpack_unpacked_destroy(&p->u);
        msgpack_sbuffer_destroy(&p->buf);
}

static char *message(const msgpack_object *e) {
        char *m = NULL;

        assert_int_equal(mp_get_str(e, "message", 1024, &m), 0);
        return m;
}

static uint64_t u64(const msgpack_object *e, const char *key) {
        uint64_t v = 0;

        assert_int_equal(mp_get_u64(e, key, &v), 0);
        return v;
}

static void assert_message(const msgpack_object *e, const char *want) {
        char *m = message(e);

        assert_string_equal(m, want);
        free(m);
}

static void test_tail_merges_instances(void **state) {
        fixture_t *f = *state;
        logd_query_t q = { .deployment_id = "d", .tail = 5, .has_tail = true, .level = LOGD_LEVEL_UNKNOWN };
        page_t p;

        run(f, &q, &p);
        assert_int_equal(p.entries->via.array.size, 5);
        assert_message(&p.entries->via.array.ptr[0], B " line 998");
        assert_message(&p.entries->via.array.ptr[1], A " line 999");
        assert_message(&p.entries->via.array.ptr[2], B " line 999");
        assert_message(&p.entries->via.array.ptr[3], A " line 1000");
        assert_message(&p.entries->via.array.ptr[4], B " line 1000");
        assert_false(p.more);
        assert_int_equal(u64(p.cursor, A), 100000);
        assert_int_equal(u64(p.cursor, B), 100000);
        page_clear(&p);
}

static void test_tail_with_level(void **state) {
        fixture_t *f = *state;
        logd_query_t q = {
                .deployment_id = "d", .tail = 3, .has_tail = true, .level = LOGD_LEVEL_WARNING, .instance = A
        };
        logd_query_source_t only_a = f->src[0];
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
        const msgpack_object *e;
        size_t off = 0;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        assert_int_equal(logd_query_run(&q, &only_a, 1, &pk), 0);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, &off), MSGPACK_UNPACK_SUCCESS);
        e = mp_map_get(&u.data, "entries");
        assert_int_equal(e->via.array.size, 3);
        assert_message(&e->via.array.ptr[0], A " line 990");
        assert_message(&e->via.array.ptr[1], A " line 995");
        assert_message(&e->via.array.ptr[2], A " line 1000");
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
}

static void test_since(void **state) {
        fixture_t *f = *state;
        /* A's line n is at 10000 + 2n: since 11990 keeps A 995.. and B 995.. (B is 1 ms later). */
        logd_query_t q = { .deployment_id = "d", .since_ms = 11990, .level = LOGD_LEVEL_UNKNOWN };
        page_t p;

        run(f, &q, &p);
        assert_int_equal(p.entries->via.array.size, 12);
        assert_message(&p.entries->via.array.ptr[0], A " line 995");
        assert_message(&p.entries->via.array.ptr[1], B " line 995");
        assert_message(&p.entries->via.array.ptr[11], B " line 1000");
        page_clear(&p);
}

/* Pages with cursors: everything, once, in order, whatever the page size. */
static void test_pages_cover_everything_once(void **state) {
        fixture_t *f = *state;
        logd_cursor_t cursors[2] = { { A, 0 }, { B, 0 } };
        uint64_t last_ts = 0, total = 0;
        bool more = true;

        while (more) {
                logd_query_t q = { .deployment_id = "d",
                                   .level = LOGD_LEVEL_ERROR,
                                   .limit = 7,
                                   .after = cursors,
                                   .n_after = 2,
                                   .has_after = true };
                page_t p;

                run(f, &q, &p);
                for (uint32_t i = 0; i < p.entries->via.array.size; i++) {
                        const msgpack_object *e = &p.entries->via.array.ptr[i];
                        char *m = message(e);
                        uint64_t ts = u64(e, "ts");

                        assert_true(ts > last_ts);
                        last_ts = ts;
                        assert_non_null(strstr(m, "0")); /* errors: every 10th line */
                        free(m);
                        total++;
                }
                cursors[0].after = u64(p.cursor, A);
                cursors[1].after = u64(p.cursor, B);
                more = p.more;
                assert_true(p.entries->via.array.size == 7 || !more);
                page_clear(&p);
        }
        assert_int_equal(total, 2 * 100);
}

/* tail 0: no history, and cursors at the end of every instance (a follower's start). */
static void test_tail_zero(void **state) {
        fixture_t *f = *state;
        logd_query_t q = { .deployment_id = "d", .tail = 0, .has_tail = true, .level = LOGD_LEVEL_UNKNOWN };
        page_t p;

        run(f, &q, &p);
        assert_int_equal(p.entries->via.array.size, 0);
        assert_false(p.more);
        assert_int_equal(u64(p.cursor, A), 100000);
        assert_int_equal(u64(p.cursor, B), 100000);
        page_clear(&p);
}

/* After the newest entry nothing comes, cheaply; an instance absent from the cursor is read whole. */
static void test_follow_cursor(void **state) {
        fixture_t *f = *state;
        logd_cursor_t cursors[1] = { { A, 100000 } };
        logd_query_t q = { .deployment_id = "d",
                           .level = LOGD_LEVEL_UNKNOWN,
                           .limit = 5000,
                           .after = cursors,
                           .n_after = 1,
                           .has_after = true };
        page_t p;

        run(f, &q, &p);
        assert_true(p.entries->via.array.size > 0);
        for (uint32_t i = 0; i < p.entries->via.array.size; i++) {
                char *inst = NULL;
                assert_int_equal(mp_get_str(&p.entries->via.array.ptr[i], "instance", 12, &inst), 0);
                assert_string_equal(inst, B);
                free(inst);
        }
        page_clear(&p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tail_merges_instances),
                cmocka_unit_test(test_tail_with_level),
                cmocka_unit_test(test_since),
                cmocka_unit_test(test_pages_cover_everything_once),
                cmocka_unit_test(test_tail_zero),
                cmocka_unit_test(test_follow_cursor),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
