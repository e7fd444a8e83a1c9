/* test_agent_proc.c: the process frames of agent protocol 2 against golden bytes (the same as
 * Python's msgpack packs them: husk-oci's tests speak to the agent that way), round trips, and
 * every way a decoder must refuse, naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/mp.h"
#include "proto/agent_proc.h"
#include "proto/schema.h"

/* clang-format off */
/* {type: "proc.output", proc: "init", fd: 1, data: b"hi"} */
static const char golden_output_hex[] =
        "84"
        "a474797065" "ab70726f632e6f7574707574"   /* type: "proc.output" */
        "a470726f63" "a4696e6974"                 /* proc: "init" */
        "a26664" "01"                             /* fd: 1 */
        "a464617461" "c4026869";                  /* data: bin8 "hi" */

/* {type: "proc.create", id: 1, proc: "init", args: ["sh"], env: ["A=b"], cwd: "/", uid: 0,
 *  gid: 0, terminal: false, start: false} */
static const char golden_create_hex[] =
        "8a"
        "a474797065" "ab70726f632e637265617465"   /* type: "proc.create" */
        "a26964" "01"                             /* id: 1 */
        "a470726f63" "a4696e6974"                 /* proc: "init" */
        "a461726773" "91a27368"                   /* args: ["sh"] */
        "a3656e76" "91a3413d62"                   /* env: ["A=b"] */
        "a3637764" "a12f"                         /* cwd: "/" */
        "a3756964" "00"                           /* uid: 0 */
        "a3676964" "00"                           /* gid: 0 */
        "a87465726d696e616c" "c2"                 /* terminal: false */
        "a57374617274" "c2";                      /* start: false */

/* {type: "proc.list", id: 9, procs: [{proc: "init", pid: 42, state: "exited", status: 143}],
 *  pids: [42, 300]} */
static const char golden_list_hex[] =
        "84"
        "a474797065" "a970726f632e6c697374"       /* type: "proc.list" */
        "a26964" "09"                             /* id: 9 */
        "a570726f6373" "91" "84"                  /* procs: [ {4 pairs */
        "a470726f63" "a4696e6974"                 /*   proc: "init" */
        "a3706964" "2a"                           /*   pid: 42 */
        "a57374617465" "a6657869746564"           /*   state: "exited" */
        "a6737461747573" "cc8f"                   /*   status: 143 (uint8) */
        "a470696473" "92" "2a" "cd012c";          /* pids: [42, 300 (uint16)] */
/* clang-format on */

typedef struct {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
} packed_t;

static void packed_init(packed_t *p) {
        msgpack_sbuffer_init(&p->buf);
        msgpack_packer_init(&p->pk, &p->buf, msgpack_sbuffer_write);
        msgpack_unpacked_init(&p->u);
}

static const msgpack_object *packed_unpack(packed_t *p) {
        size_t off = 0;

        msgpack_unpacked_destroy(&p->u);
        msgpack_unpacked_init(&p->u);
        assert_int_equal(msgpack_unpack_next(&p->u, p->buf.data, p->buf.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, p->buf.size);
        return &p->u.data;
}

static void packed_destroy(packed_t *p) {
        msgpack_unpacked_destroy(&p->u);
        msgpack_sbuffer_destroy(&p->buf);
}

static void assert_hex(const msgpack_sbuffer *b, const char *hex) {
        char *got = calloc(1, 2 * b->size + 1);

        for (size_t k = 0; k < b->size; k++)
                snprintf(got + 2 * k, 3, "%02x", (unsigned char)b->data[k]);
        assert_string_equal(got, hex);
        free(got);
}

/* hex into a packed_t's buffer, unpacked. */
static const msgpack_object *from_hex(packed_t *p, const char *hex) {
        for (size_t k = 0; hex[k] && hex[k + 1]; k += 2) {
                unsigned v;
                char byte;

                assert_int_equal(sscanf(hex + k, "%2x", &v), 1);
                byte = (char)v;
                msgpack_sbuffer_write(&p->buf, &byte, 1);
        }
        return packed_unpack(p);
}

static void test_output_golden(void **state) {
        agent_proc_output_t out = { .proc = "init", .fd = 1, .data = (const uint8_t *)"hi", .size = 2 }, got;
        const char *field = NULL;
        packed_t p;

        packed_init(&p);
        agent_proc_output_pack(&p.pk, &out);
        assert_hex(&p.buf, golden_output_hex);
        assert_int_equal(agent_proc_output_unpack(packed_unpack(&p), &got, &field), 0);
        assert_string_equal(got.proc, "init");
        assert_int_equal(got.fd, 1);
        assert_int_equal(got.size, 2);
        assert_memory_equal(got.data, "hi", 2);
        packed_destroy(&p);
}

static void test_create_golden_and_round_trip(void **state) {
        char *args[] = { "sh", NULL }, *env[] = { "A=b", NULL };
        agent_proc_create_t c = { .id = 1, .proc = "init", .args = args, .env = env, .cwd = "/" }, got;
        agent_rlimit_t limits[] = { { RLIMIT_NOFILE, 1024, 4096 }, { RLIMIT_CORE, 0, UINT64_MAX } };
        uint32_t gids[] = { 10, 4294967294u };
        const char *field = NULL;
        packed_t p;

        packed_init(&p);
        agent_proc_create_pack(&p.pk, &c);
        assert_hex(&p.buf, golden_create_hex);
        assert_int_equal(agent_proc_create_unpack(packed_unpack(&p), &got, &field), 0);
        assert_string_equal(got.proc, "init");
        assert_string_equal(got.args[0], "sh");
        assert_null(got.args[1]);
        assert_string_equal(got.env[0], "A=b");
        assert_string_equal(got.cwd, "/");
        assert_false(got.terminal);
        assert_false(got.start);
        assert_int_equal(got.n_gids, 0);
        agent_proc_create_clear(&got);
        packed_destroy(&p);

        /* Every optional field. */
        c = (agent_proc_create_t){ .id = 1ull << 40,
                                   .proc = "exec-1.a_B",
                                   .args = args,
                                   .env = env,
                                   .cwd = "/tmp",
                                   .uid = 1000,
                                   .gid = 100,
                                   .gids = gids,
                                   .n_gids = 2,
                                   .terminal = true,
                                   .rows = 24,
                                   .cols = 65535,
                                   .rlimits = limits,
                                   .n_rlimits = 2,
                                   .no_new_privileges = true,
                                   .start = true };
        packed_init(&p);
        agent_proc_create_pack(&p.pk, &c);
        assert_int_equal(agent_proc_create_unpack(packed_unpack(&p), &got, &field), 0);
        assert_int_equal(got.id, 1ull << 40);
        assert_string_equal(got.proc, "exec-1.a_B");
        assert_int_equal(got.uid, 1000);
        assert_int_equal(got.gid, 100);
        assert_int_equal(got.n_gids, 2);
        assert_int_equal(got.gids[1], 4294967294u);
        assert_true(got.terminal);
        assert_int_equal(got.rows, 24);
        assert_int_equal(got.cols, 65535);
        assert_int_equal(got.n_rlimits, 2);
        assert_int_equal(got.rlimits[0].resource, RLIMIT_NOFILE);
        assert_int_equal(got.rlimits[0].soft, 1024);
        assert_int_equal(got.rlimits[1].hard, UINT64_MAX);
        assert_true(got.no_new_privileges);
        assert_true(got.start);
        agent_proc_create_clear(&got);
        packed_destroy(&p);
}

static void test_list_golden_and_round_trip(void **state) {
        agent_proc_info_t procs[] = {
                { .proc = "init", .pid = 42, .state = AGENT_PROC_EXITED, .has_status = true, .status = 143 }
        };
        uint32_t pids[] = { 42, 300 };
        agent_proc_list_t l = { .id = 9, .procs = procs, .n_procs = 1, .pids = pids, .n_pids = 2 }, got;
        packed_t p;

        packed_init(&p);
        agent_proc_list_pack(&p.pk, &l);
        assert_hex(&p.buf, golden_list_hex);
        assert_int_equal(agent_proc_list_unpack(packed_unpack(&p), &got, NULL), 0);
        assert_int_equal(got.id, 9);
        assert_int_equal(got.n_procs, 1);
        assert_string_equal(got.procs[0].proc, "init");
        assert_int_equal(got.procs[0].state, AGENT_PROC_EXITED);
        assert_true(got.procs[0].has_status);
        assert_int_equal(got.procs[0].status, 143);
        assert_int_equal(got.n_pids, 2);
        assert_int_equal(got.pids[1], 300);
        agent_proc_list_clear(&got);
        packed_destroy(&p);
}

static void test_small_frames_round_trip(void **state) {
        agent_proc_ref_t ref = { .id = 3, .proc = "init", .has_pid = true, .pid = 77 }, ref2;
        agent_proc_stdin_t in = { .proc = "x", .data = (const uint8_t *)"abc", .size = 3 }, in2;
        agent_proc_resize_t rs = { .id = 4, .proc = "x", .rows = 50, .cols = 132 }, rs2;
        agent_proc_signal_t sg = { .id = 5, .proc = "x", .signal = 15, .all = true }, sg2;
        agent_proc_exited_t ex = { .proc = "x", .status = -1 }, ex2;
        packed_t p;

        packed_init(&p);
        agent_proc_ref_pack(&p.pk, AGENT_FRAME_PROC_CREATE, &ref);
        assert_int_equal(agent_proc_ref_unpack(packed_unpack(&p), AGENT_FRAME_PROC_CREATE, &ref2, NULL), 0);
        assert_true(ref2.has_pid);
        assert_int_equal(ref2.pid, 77);
        /* The type is part of the shape. */
        assert_int_equal(agent_proc_ref_unpack(&p.u.data, AGENT_FRAME_PROC_START, &ref2, NULL), -EBADMSG);
        packed_destroy(&p);

        packed_init(&p);
        ref.has_pid = false;
        agent_proc_ref_pack(&p.pk, AGENT_FRAME_PROC_START, &ref);
        assert_int_equal(agent_proc_ref_unpack(packed_unpack(&p), AGENT_FRAME_PROC_START, &ref2, NULL), 0);
        assert_false(ref2.has_pid);
        assert_string_equal(ref2.proc, "init");
        packed_destroy(&p);

        packed_init(&p);
        agent_proc_stdin_pack(&p.pk, &in);
        assert_int_equal(agent_proc_stdin_unpack(packed_unpack(&p), &in2, NULL), 0);
        assert_false(in2.eof);
        assert_int_equal(in2.size, 3);
        assert_memory_equal(in2.data, "abc", 3);
        packed_destroy(&p);
        packed_init(&p);
        in.eof = true;
        agent_proc_stdin_pack(&p.pk, &in);
        assert_int_equal(agent_proc_stdin_unpack(packed_unpack(&p), &in2, NULL), 0);
        assert_true(in2.eof);
        assert_int_equal(in2.size, 0);
        packed_destroy(&p);

        packed_init(&p);
        agent_proc_resize_pack(&p.pk, &rs);
        assert_int_equal(agent_proc_resize_unpack(packed_unpack(&p), &rs2, NULL), 0);
        assert_int_equal(rs2.rows, 50);
        assert_int_equal(rs2.cols, 132);
        packed_destroy(&p);

        packed_init(&p);
        agent_proc_signal_pack(&p.pk, &sg);
        assert_int_equal(agent_proc_signal_unpack(packed_unpack(&p), &sg2, NULL), 0);
        assert_int_equal(sg2.signal, 15);
        assert_true(sg2.all);
        packed_destroy(&p);

        packed_init(&p);
        agent_proc_exited_pack(&p.pk, &ex);
        assert_int_equal(agent_proc_exited_unpack(packed_unpack(&p), &ex2, NULL), 0);
        assert_int_equal(ex2.status, -1);
        packed_destroy(&p);
}

static size_t hex_key(char *hex, size_t size, const char *key) {
        size_t len = snprintf(hex, size, "%02zx", 0xa0 + strlen(key));

        for (const char *c = key; *c; c++)
                len += snprintf(hex + len, size - len, "%02x", (unsigned char)*c);
        return len;
}

/* The golden proc.create with one field replaced (value_hex: its packed value), added (a key the
 * golden one lacks) or left out (value_hex NULL). */
static void assert_create_refused(const char *key, const char *value_hex, const char *want_field) {
        static const struct {
                const char *key, *hex;
        } base[] = {
                { "type", "ab70726f632e637265617465" },
                { "id", "01" },
                { "proc", "a4696e6974" },
                { "args", "91a27368" },
                { "env", "90" },
                { "cwd", "a12f" },
                { "uid", "00" },
                { "gid", "00" },
                { "terminal", "c2" },
                { "start", "c2" },
        };
        char body[4096];
        char hex[4200];
        size_t n = 0, len = 0;
        bool known = false;
        agent_proc_create_t c;
        const char *field = NULL;
        packed_t p;

        for (size_t k = 0; k < ELEMENTSOF(base); k++) {
                const char *v = base[k].hex;

                if (streq(base[k].key, key)) {
                        known = true;
                        v = value_hex;
                }
                if (!v)
                        continue;
                len += hex_key(body + len, sizeof(body) - len, base[k].key);
                len += snprintf(body + len, sizeof(body) - len, "%s", v);
                n++;
        }
        if (!known) {
                len += hex_key(body + len, sizeof(body) - len, key);
                len += snprintf(body + len, sizeof(body) - len, "%s", value_hex);
                n++;
        }
        snprintf(hex, sizeof(hex), "%02zx%s", 0x80 + n, body);
        packed_init(&p);
        if (agent_proc_create_unpack(from_hex(&p, hex), &c, &field) != -EBADMSG)
                fail_msg("%s=%s was accepted", key, value_hex ? value_hex : "(absent)");
        assert_string_equal(field, want_field);
        assert_null(c.args); /* cleared */
        packed_destroy(&p);
}

static void test_create_refusals(void **state) {
        packed_t p;
        agent_proc_create_t c;

        /* The base itself passes. */
        packed_init(&p);
        assert_int_equal(agent_proc_create_unpack(from_hex(&p, golden_create_hex), &c, NULL), 0);
        agent_proc_create_clear(&c);
        packed_destroy(&p);

        assert_create_refused("type", "aa70726f632e7374617274", "type"); /* "proc.start" */
        assert_create_refused("id", NULL, "id");
        assert_create_refused("id", "ff", "id"); /* -1 */
        assert_create_refused("proc", "a0", "proc");
        assert_create_refused("proc", "a3612f62", "proc"); /* "a/b" */
        assert_create_refused("proc", "a3612062", "proc"); /* "a b" */
        {
                char long_name[4 + 2 * 65 + 1] = "d941"; /* str8, 65 bytes */

                for (int k = 0; k < 65; k++)
                        strcat(long_name, "61");
                assert_create_refused("proc", long_name, "proc");
        }
        assert_create_refused("args", "90", "args");
        assert_create_refused("args", "91a0", "args");       /* [""] */
        assert_create_refused("args", "91a3610062", "args"); /* NUL inside */
        assert_create_refused("args", NULL, "args");
        assert_create_refused("env", "91a141", "env");     /* ["A"] */
        assert_create_refused("env", "91a33d6162", "env"); /* ["=ab"] */
        assert_create_refused("env", "81a141a162", "env"); /* a map: that is v1's exec */
        assert_create_refused("cwd", "a3746d70", "cwd");   /* relative */
        assert_create_refused("uid", "ceffffffff", "uid"); /* (uid_t)-1 */
        assert_create_refused("gid", "a130", "gid");       /* a str */
        assert_create_refused("terminal", NULL, "terminal");
        assert_create_refused("start", "01", "start");
        assert_create_refused("additional_gids", "91ff", "additional_gids");
        assert_create_refused("additional_gids", "a0", "additional_gids");
        assert_create_refused("rlimits", "9183a474797065a3464f4fa4736f667400a46861726400", "rlimits"); /* FOO */
        assert_create_refused("rlimits", "9182a474797065ad524c494d49545f4e4f46494c45a4736f667400", "rlimits");
        assert_create_refused("no_new_privileges", "a0", "no_new_privileges");
}

static void test_create_terminal_needs_a_size(void **state) {
        char *args[] = { "sh", NULL };
        agent_proc_create_t c = { .proc = "t", .args = args, .cwd = "/", .terminal = true, .rows = 1, .cols = 1 };
        const char *field = NULL;
        agent_proc_create_t got;
        packed_t p;

        packed_init(&p);
        agent_proc_create_pack(&p.pk, &c);
        /* cols past u16: patch "cols: 1" to "cols: 65536" by packing anew. */
        assert_int_equal(agent_proc_create_unpack(packed_unpack(&p), &got, &field), 0);
        agent_proc_create_clear(&got);
        packed_destroy(&p);

        packed_init(&p);
        msgpack_pack_map(&p.pk, 11);
        mp_pack_kv_str(&p.pk, "type", "proc.create");
        mp_pack_kv_u64(&p.pk, "id", 1);
        mp_pack_kv_str(&p.pk, "proc", "t");
        mp_pack_kv_strv(&p.pk, "args", args);
        mp_pack_kv_strv(&p.pk, "env", args + 1);
        mp_pack_kv_str(&p.pk, "cwd", "/");
        mp_pack_kv_u64(&p.pk, "uid", 0);
        mp_pack_kv_u64(&p.pk, "gid", 0);
        mp_pack_kv_bool(&p.pk, "terminal", true);
        mp_pack_kv_u64(&p.pk, "rows", 24);
        mp_pack_kv_bool(&p.pk, "start", true);
        assert_int_equal(agent_proc_create_unpack(packed_unpack(&p), &got, &field), -EBADMSG);
        assert_string_equal(field, "cols");
        packed_destroy(&p);
}

static void test_small_frames_refusals(void **state) {
        agent_proc_stdin_t in;
        agent_proc_output_t out;
        agent_proc_signal_t sg;
        agent_proc_resize_t rs;
        agent_proc_list_t l;
        const char *field;
        uint8_t *big = calloc(1, AGENT_PROC_DATA_MAX + 1);
        packed_t p;

        /* stdin: data and eof together, neither, too much data */
        packed_init(&p);
        msgpack_pack_map(&p.pk, 4);
        mp_pack_kv_str(&p.pk, "type", "proc.stdin");
        mp_pack_kv_str(&p.pk, "proc", "x");
        mp_pack_kv_bool(&p.pk, "eof", true);
        mp_pack_str(&p.pk, "data");
        msgpack_pack_bin(&p.pk, 1);
        msgpack_pack_bin_body(&p.pk, "a", 1);
        assert_int_equal(agent_proc_stdin_unpack(packed_unpack(&p), &in, &field), -EBADMSG);
        assert_string_equal(field, "data");
        packed_destroy(&p);

        packed_init(&p);
        msgpack_pack_map(&p.pk, 2);
        mp_pack_kv_str(&p.pk, "type", "proc.stdin");
        mp_pack_kv_str(&p.pk, "proc", "x");
        assert_int_equal(agent_proc_stdin_unpack(packed_unpack(&p), &in, &field), -EBADMSG);
        assert_string_equal(field, "data");
        packed_destroy(&p);

        packed_init(&p);
        agent_proc_stdin_pack(&p.pk, &(agent_proc_stdin_t){ .proc = "x", .data = big, .size = AGENT_PROC_DATA_MAX });
        assert_int_equal(agent_proc_stdin_unpack(packed_unpack(&p), &in, &field), 0);
        packed_destroy(&p);
        packed_init(&p);
        agent_proc_stdin_pack(&p.pk,
                              &(agent_proc_stdin_t){ .proc = "x", .data = big, .size = AGENT_PROC_DATA_MAX + 1 });
        assert_int_equal(agent_proc_stdin_unpack(packed_unpack(&p), &in, &field), -EBADMSG);
        assert_string_equal(field, "data");
        packed_destroy(&p);

        /* output: fd 3 */
        packed_init(&p);
        agent_proc_output_pack(&p.pk, &(agent_proc_output_t){ .proc = "x", .fd = 3 });
        assert_int_equal(agent_proc_output_unpack(packed_unpack(&p), &out, &field), -EBADMSG);
        assert_string_equal(field, "fd");
        packed_destroy(&p);

        /* signal: 0 and 65 */
        packed_init(&p);
        agent_proc_signal_pack(&p.pk, &(agent_proc_signal_t){ .proc = "x", .signal = 0 });
        assert_int_equal(agent_proc_signal_unpack(packed_unpack(&p), &sg, &field), -EBADMSG);
        assert_string_equal(field, "signal");
        packed_destroy(&p);
        packed_init(&p);
        agent_proc_signal_pack(&p.pk, &(agent_proc_signal_t){ .proc = "x", .signal = 65 });
        assert_int_equal(agent_proc_signal_unpack(packed_unpack(&p), &sg, &field), -EBADMSG);
        packed_destroy(&p);

        /* resize: no proc */
        packed_init(&p);
        msgpack_pack_map(&p.pk, 4);
        mp_pack_kv_str(&p.pk, "type", "proc.resize");
        mp_pack_kv_u64(&p.pk, "id", 1);
        mp_pack_kv_u64(&p.pk, "rows", 1);
        mp_pack_kv_u64(&p.pk, "cols", 1);
        assert_int_equal(agent_proc_resize_unpack(packed_unpack(&p), &rs, &field), -EBADMSG);
        assert_string_equal(field, "proc");
        packed_destroy(&p);

        /* list: an unknown state, pids not uint */
        packed_init(&p);
        msgpack_pack_map(&p.pk, 4);
        mp_pack_kv_str(&p.pk, "type", "proc.list");
        mp_pack_kv_u64(&p.pk, "id", 1);
        mp_pack_str(&p.pk, "procs");
        msgpack_pack_array(&p.pk, 1);
        msgpack_pack_map(&p.pk, 3);
        mp_pack_kv_str(&p.pk, "proc", "x");
        mp_pack_kv_u64(&p.pk, "pid", 1);
        mp_pack_kv_str(&p.pk, "state", "paused");
        mp_pack_str(&p.pk, "pids");
        msgpack_pack_array(&p.pk, 0);
        assert_int_equal(agent_proc_list_unpack(packed_unpack(&p), &l, &field), -EBADMSG);
        assert_string_equal(field, "procs");
        assert_null(l.procs);
        packed_destroy(&p);
        packed_init(&p);
        msgpack_pack_map(&p.pk, 4);
        mp_pack_kv_str(&p.pk, "type", "proc.list");
        mp_pack_kv_u64(&p.pk, "id", 1);
        mp_pack_str(&p.pk, "procs");
        msgpack_pack_array(&p.pk, 0);
        mp_pack_str(&p.pk, "pids");
        msgpack_pack_array(&p.pk, 1);
        msgpack_pack_int(&p.pk, -1);
        assert_int_equal(agent_proc_list_unpack(packed_unpack(&p), &l, &field), -EBADMSG);
        assert_string_equal(field, "pids");
        packed_destroy(&p);
        free(big);
}

static void test_names_and_rlimits(void **state) {
        assert_true(agent_proc_name_valid("init"));
        assert_true(agent_proc_name_valid("exec-12.a_B"));
        assert_false(agent_proc_name_valid(""));
        assert_false(agent_proc_name_valid(NULL));
        assert_false(agent_proc_name_valid("../x"));
        assert_int_equal(agent_rlimit_from_string("RLIMIT_NOFILE"), RLIMIT_NOFILE);
        assert_int_equal(agent_rlimit_from_string("RLIMIT_RTTIME"), RLIMIT_RTTIME);
        assert_int_equal(agent_rlimit_from_string("NOFILE"), -EINVAL);
        assert_string_equal(agent_rlimit_to_string(RLIMIT_AS), "RLIMIT_AS");
        assert_null(agent_rlimit_to_string(16));
}

/* What the codecs pack fits the schema's tables (strictly). */
static void test_fits_schema(void **state) {
        char *args[] = { "sh", NULL };
        agent_rlimit_t limits[] = { { RLIMIT_NOFILE, 1, 2 } };
        uint32_t gids[] = { 5 };
        agent_proc_create_t c = { .proc = "p",
                                  .args = args,
                                  .cwd = "/",
                                  .terminal = true,
                                  .rows = 2,
                                  .cols = 3,
                                  .gids = gids,
                                  .n_gids = 1,
                                  .rlimits = limits,
                                  .n_rlimits = 1,
                                  .no_new_privileges = true };
        agent_proc_info_t procs[] = { { .proc = "p", .pid = 3, .state = AGENT_PROC_RUNNING } };
        uint32_t pids[] = { 3 };
        proto_error_t e = {};
        packed_t p;

#define CHECK(msg, call)                                                                   \
        do {                                                                               \
                packed_init(&p);                                                           \
                call;                                                                      \
                if (proto_check(&(msg), packed_unpack(&p), PROTO_CHECK_STRICT, &e) < 0)    \
                        fail_msg("%s does not fit the schema: %s", (msg).name, e.message); \
                packed_destroy(&p);                                                        \
        } while (0)
        CHECK(proto_msg_agent_proc_create, agent_proc_create_pack(&p.pk, &c));
        CHECK(proto_msg_agent_proc_create_answer,
              agent_proc_ref_pack(&p.pk, AGENT_FRAME_PROC_CREATE,
                                  &(agent_proc_ref_t){ .id = 1, .proc = "p", .has_pid = true, .pid = 9 }));
        CHECK(proto_msg_agent_proc_start,
              agent_proc_ref_pack(&p.pk, AGENT_FRAME_PROC_START, &(agent_proc_ref_t){ .id = 1, .proc = "p" }));
        CHECK(proto_msg_agent_proc_resize_answer,
              agent_proc_ref_pack(&p.pk, AGENT_FRAME_PROC_RESIZE, &(agent_proc_ref_t){ .id = 1, .proc = "p" }));
        CHECK(proto_msg_agent_proc_signal_answer,
              agent_proc_ref_pack(&p.pk, AGENT_FRAME_PROC_SIGNAL, &(agent_proc_ref_t){ .id = 1, .proc = "p" }));
        CHECK(proto_msg_agent_proc_stdin,
              agent_proc_stdin_pack(&p.pk,
                                    &(agent_proc_stdin_t){ .proc = "p", .data = (const uint8_t *)"a", .size = 1 }));
        CHECK(proto_msg_agent_proc_stdin, agent_proc_stdin_pack(&p.pk, &(agent_proc_stdin_t){ .proc = "p", .eof = 1 }));
        CHECK(proto_msg_agent_proc_output,
              agent_proc_output_pack(&p.pk, &(agent_proc_output_t){ .proc = "p", .fd = 2 }));
        CHECK(proto_msg_agent_proc_resize,
              agent_proc_resize_pack(&p.pk, &(agent_proc_resize_t){ .id = 1, .proc = "p", .rows = 1, .cols = 2 }));
        CHECK(proto_msg_agent_proc_signal,
              agent_proc_signal_pack(&p.pk, &(agent_proc_signal_t){ .id = 1, .proc = "p", .signal = 9, .all = 1 }));
        CHECK(proto_msg_agent_proc_exited,
              agent_proc_exited_pack(&p.pk, &(agent_proc_exited_t){ .proc = "p", .status = 143 }));
        CHECK(proto_msg_agent_proc_list, agent_proc_list_request_pack(&p.pk, 4));
        CHECK(proto_msg_agent_proc_list_answer,
              agent_proc_list_pack(
                      &p.pk, &(agent_proc_list_t){ .id = 4, .procs = procs, .n_procs = 1, .pids = pids, .n_pids = 1 }));
#undef CHECK
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_output_golden),
                cmocka_unit_test(test_create_golden_and_round_trip),
                cmocka_unit_test(test_list_golden_and_round_trip),
                cmocka_unit_test(test_small_frames_round_trip),
                cmocka_unit_test(test_create_refusals),
                cmocka_unit_test(test_create_terminal_needs_a_size),
                cmocka_unit_test(test_small_frames_refusals),
                cmocka_unit_test(test_names_and_rlimits),
                cmocka_unit_test(test_fits_schema),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
