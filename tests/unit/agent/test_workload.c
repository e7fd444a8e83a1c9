/* test_workload.c: husk-agent's workload side run on the host: console relay, config.json, eth0 parameters, start and exec with real child processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/mp.h"
#include "services/agent/agent.h"

/* ---- console relay ------------------------------------------------------------------------ */

static char *drain(int fd) {
        static char buf[65536];
        ssize_t n = read(fd, buf, sizeof(buf) - 1);

        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static void test_relay_marks_every_line(void **state) {
        int p[2];
        agent_relay_t r;
        char long_line[AGENT_CONSOLE_LINE_MAX + 10];

        assert_int_equal(pipe2(p, O_NONBLOCK), 0);
        agent_relay_init(&r, -1, AGENT_CONSOLE_STDOUT, p[1]);
        agent_relay_feed(&r, "one\ntw", 6, false);
        assert_string_equal(drain(p[0]), "husk-workload: one\n");
        agent_relay_feed(&r, "o\r\nthree", 8, true);
        assert_string_equal(drain(p[0]), "husk-workload: two\nhusk-workload: three\n");

        /* Cut at the line limit; each piece marked. */
        memset(long_line, 'x', sizeof(long_line));
        agent_relay_init(&r, -1, AGENT_CONSOLE_STDERR, p[1]);
        agent_relay_feed(&r, long_line, sizeof(long_line), true);
        {
                const char *out = drain(p[0]);
                size_t prefix = strlen(AGENT_CONSOLE_STDERR);

                assert_int_equal(strlen(out), 2 * prefix + sizeof(long_line) + 2);
                assert_memory_equal(out, AGENT_CONSOLE_STDERR, prefix);
                assert_memory_equal(out + prefix + AGENT_CONSOLE_LINE_MAX + 1, AGENT_CONSOLE_STDERR, prefix);
        }
        close(p[0]);
        close(p[1]);
}

/* ---- config.json ---------------------------------------------------------------------------- */

static void test_bundle_parse(void **state) {
        agent_bundle_t b = {};
        char *error = NULL;

        assert_int_equal(
                agent_bundle_parse("{\"process\": {\"terminal\": true, \"args\": [\"/bin/sh\", \"-c\", \"x\"],"
                                   " \"env\": [\"A=1\"], \"cwd\": \"/w\", \"capabilities\": {\"bounding\": []},"
                                   " \"user\": {\"uid\": 0}}, \"mounts\": [{}], \"linux\": {\"namespaces\": [{}],"
                                   " \"devices\": []}}",
                                   &b, &error),
                0);
        assert_int_equal(mp_strv_len(b.args), 3);
        assert_string_equal(b.env[0], "A=1");
        assert_string_equal(b.cwd, "/w");
        /* Present and non-empty only: an empty devices list is nothing ignored. */
        assert_int_equal(mp_strv_len(b.ignored), 4);
        assert_string_equal(b.ignored[0], "process.terminal");
        assert_string_equal(b.ignored[1], "process.capabilities");
        assert_string_equal(b.ignored[2], "mounts");
        assert_string_equal(b.ignored[3], "linux.namespaces");
        agent_bundle_clear(&b);

        assert_int_equal(agent_bundle_parse("[]", &b, &error), -EBADMSG);
        assert_string_equal(error, "config.json: not a JSON object");
        free(error);
        assert_int_equal(agent_bundle_parse("{\"process\": {\"args\": [1]}}", &b, &error), -EBADMSG);
        assert_non_null(strstr(error, "process.args"));
        free(error);
        assert_int_equal(agent_bundle_parse("{\"process\": {\"cwd\": \"rel\"}}", &b, &error), -EBADMSG);
        free(error);

        /* A bundle nested deep is refused before jansson recurses into it. */
        {
                char deep[64 + 4 * 5000] = "{\"process\": {\"args\": ";
                size_t n = strlen(deep);

                for (int i = 0; i < 5000; i++)
                        deep[n++] = '[';
                for (int i = 0; i < 5000; i++)
                        deep[n++] = ']';
                memcpy(deep + n, "}}", 3);
                assert_int_equal(agent_bundle_parse(deep, &b, &error), -EBADMSG);
                assert_non_null(strstr(error, "config.json: process.args[0][0]"));
                assert_non_null(strstr(error, "nested deeper than 32 levels"));
                free(error);
        }
}

/* ---- eth0 parameters ---------------------------------------------------------------------- */

static void test_net_parse(void **state) {
        agent_net_t n;

        assert_int_equal(agent_net_parse("quiet husk.ip=10.42.0.6/30 husk.gw=10.42.0.5 husk.dns=1.1.1.1", &n), 0);
        assert_true(n.configured);
        assert_int_equal(n.addr, inet_addr("10.42.0.6"));
        assert_int_equal(n.prefix, 30);
        assert_int_equal(n.gateway, inet_addr("10.42.0.5"));
        assert_int_equal(n.dns, inet_addr("1.1.1.1"));
        assert_int_equal(agent_net_parse("quiet", &n), -ENOENT);
        assert_false(n.configured);
        assert_int_equal(agent_net_parse("husk.ip=10.42.0.6", &n), -EINVAL);
        assert_int_equal(agent_net_parse("husk.ip=10.42.0.6/33", &n), -EINVAL);
        assert_int_equal(agent_net_parse("husk.ip=10.42.0.6/30 husk.gw=nope", &n), -EINVAL);
}

/* ---- start and exec, with real children ------------------------------------------------------ */

typedef struct frames {
        msgpack_unpacked u[8];
        size_t n;
        msgpack_sbuffer bufs[8];
} frames_t;

static void collect(msgpack_sbuffer *body, void *userdata) {
        frames_t *f = userdata;
        size_t off = 0;

        assert_true(f->n < 8);
        msgpack_sbuffer_init(&f->bufs[f->n]);
        msgpack_sbuffer_write(&f->bufs[f->n], body->data, body->size);
        msgpack_unpacked_init(&f->u[f->n]);
        assert_int_equal(msgpack_unpack_next(&f->u[f->n], f->bufs[f->n].data, f->bufs[f->n].size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        f->n++;
}

static void frames_clear(frames_t *f) {
        for (size_t k = 0; k < f->n; k++) {
                msgpack_unpacked_destroy(&f->u[k]);
                msgpack_sbuffer_destroy(&f->bufs[k]);
        }
        f->n = 0;
}

/* The agent's loop in miniature: poll the pipes, reap, finish, until want frames came. */
static void run_until(agent_state_t *s, frames_t *f, size_t want) {
        uint64_t deadline = now_monotonic_ms() + 10000;

        while (f->n < want) {
                struct pollfd p[AGENT_IO_POLLFDS_MAX];
                size_t n;
                int status, timeout;
                pid_t pid;

                assert_true(now_monotonic_ms() < deadline);
                while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                        agent_child_exited(s, pid, status);
                timeout = agent_io_finish(s, collect, f);
                if (f->n >= want)
                        break;
                n = agent_io_pollfds(s, p, ELEMENTSOF(p));
                (void)poll(p, n, timeout < 0 || timeout > 20 ? 20 : timeout);
                agent_io_ready(s, p, n, collect, f);
        }
}

/* {type, id, <extra packed by the caller>} */
static void request(msgpack_sbuffer *buf, msgpack_packer *pk, const char *type, uint64_t id, size_t extra) {
        msgpack_sbuffer_init(buf);
        msgpack_packer_init(pk, buf, msgpack_sbuffer_write);
        msgpack_pack_map(pk, 2 + extra);
        mp_pack_kv_str(pk, "type", type);
        mp_pack_kv_u64(pk, "id", id);
}

static void handle(agent_state_t *s, msgpack_sbuffer *req, msgpack_sbuffer *reply) {
        msgpack_unpacked u;
        size_t off = 0;

        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, req->data, req->size, &off), MSGPACK_UNPACK_SUCCESS);
        msgpack_sbuffer_init(reply);
        assert_int_equal(agent_proto_handle(s, &u.data, reply), 0);
        msgpack_unpacked_destroy(&u);
}

static const msgpack_object *field(const msgpack_object *o, const char *key) {
        const msgpack_object *v = mp_map_get(o, key);
        assert_non_null(v);
        return v;
}

static void test_start_and_exec(void **state) {
        char *command[] = { "/bin/sh", "-c", "echo started $GREETING; exit 3", NULL };
        char *env[] = { "GREETING=hi", NULL },
             *argv[] = { "/bin/sh", "-c", "echo $GREETING; echo e >&2; cat; exit 7", NULL };
        msgpack_sbuffer req, reply;
        msgpack_packer pk;
        agent_state_t s;
        frames_t f = {};
        int console[2];
        sigset_t mask;

        /* As in the agent: SIGCHLD is read, not delivered. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        assert_int_equal(pipe2(console, O_NONBLOCK), 0);
        agent_state_init(&s);
        s.no_switch_root = true;
        s.console = console[1];
        agent_relay_init(&s.workload.out, -1, AGENT_CONSOLE_STDOUT, console[1]);
        agent_relay_init(&s.workload.err, -1, AGENT_CONSOLE_STDERR, console[1]);

        /* An exec before the workload: the base environment. */
        request(&req, &pk, "exec", 7, 3);
        mp_pack_kv_strv(&pk, "argv", argv);
        mp_pack_kv_env(&pk, "env", env);
        mp_pack_str(&pk, "stdin");
        msgpack_pack_bin(&pk, 5);
        msgpack_pack_bin_body(&pk, "input", 5);
        handle(&s, &req, &reply);
        assert_int_equal(reply.size, 0); /* answered when done */
        msgpack_sbuffer_destroy(&req);
        msgpack_sbuffer_destroy(&reply);
        run_until(&s, &f, 1);
        assert_true(mp_str_eq(field(&f.u[0].data, "type"), "exec"));
        assert_int_equal(field(&f.u[0].data, "id")->via.u64, 7);
        assert_int_equal(field(&f.u[0].data, "exit_status")->via.u64, 7);
        assert_int_equal(field(&f.u[0].data, "stdout")->via.bin.size, strlen("hi\ninput"));
        assert_memory_equal(field(&f.u[0].data, "stdout")->via.bin.ptr, "hi\ninput", 8);
        assert_memory_equal(field(&f.u[0].data, "stderr")->via.bin.ptr, "e\n", 2);
        frames_clear(&f);

        /* The workload: its output on the console, its exit reported once. */
        request(&req, &pk, "start", 8, 3);
        mp_pack_kv_str(&pk, "mode", "rootfs");
        mp_pack_kv_strv(&pk, "command", command);
        mp_pack_kv_env(&pk, "env", env);
        handle(&s, &req, &reply);
        msgpack_sbuffer_destroy(&reply);
        handle(&s, &req, &reply); /* again: refused */
        {
                msgpack_unpacked u;
                size_t off = 0;

                msgpack_unpacked_init(&u);
                assert_int_equal(msgpack_unpack_next(&u, reply.data, reply.size, &off), MSGPACK_UNPACK_SUCCESS);
                assert_true(mp_str_eq(field(&u.data, "code"), "conflict"));
                msgpack_unpacked_destroy(&u);
        }
        msgpack_sbuffer_destroy(&reply);
        msgpack_sbuffer_destroy(&req);
        run_until(&s, &f, 1);
        assert_true(mp_str_eq(field(&f.u[0].data, "type"), "exited"));
        assert_int_equal(field(&f.u[0].data, "status")->via.u64, 3);
        assert_true(s.power_off);
        assert_string_equal(drain(console[0]), "husk-workload: started hi\n");
        frames_clear(&f);

        mp_strv_free(s.workload.env);
        free(s.workload.cwd);
        free(s.workload.kind);
        close(console[0]);
        close(console[1]);
}

/* subdir (a warm-pool clone's image, one level down its 9p share): one plain name, with fs 9p
 * only; anything else is refused before the workload is marked started. */
static void test_start_refuses_a_bad_subdir(void **state) {
        static const struct {
                const char *subdir, *fs;
        } bad[] = { { "../etc", "9p" }, { "a/b", "9p" },   { "", "9p" },           { ".", "9p" },
                    { "..", "9p" },     { "image", NULL }, { "image", "virtiofs" } };
        agent_state_t s;

        agent_state_init(&s);
        s.no_switch_root = true;
        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                msgpack_sbuffer req, reply;
                msgpack_unpacked u;
                msgpack_packer pk;
                size_t off = 0;

                request(&req, &pk, "start", 9, bad[k].fs ? 3 : 2);
                mp_pack_kv_str(&pk, "mode", "rootfs");
                mp_pack_kv_str(&pk, "subdir", bad[k].subdir);
                if (bad[k].fs)
                        mp_pack_kv_str(&pk, "fs", bad[k].fs);
                handle(&s, &req, &reply);
                msgpack_unpacked_init(&u);
                assert_int_equal(msgpack_unpack_next(&u, reply.data, reply.size, &off), MSGPACK_UNPACK_SUCCESS);
                assert_true(mp_str_eq(field(&u.data, "code"), "invalid"));
                assert_true(field(&u.data, "message")->via.str.size > 7 &&
                            strncmp(field(&u.data, "message")->via.str.ptr, "subdir:", 7) == 0);
                msgpack_unpacked_destroy(&u);
                msgpack_sbuffer_destroy(&reply);
                msgpack_sbuffer_destroy(&req);
                assert_false(s.workload.started);
        }
}

static void test_exec_timeout_kills(void **state) {
        char *argv[] = { "/bin/sleep", "30", NULL }, *missing[] = { "/nonexistent", NULL };
        msgpack_sbuffer req, reply;
        msgpack_packer pk;
        agent_state_t s;
        frames_t f = {};

        agent_state_init(&s);
        request(&req, &pk, "exec", 1, 2);
        mp_pack_kv_strv(&pk, "argv", argv);
        mp_pack_kv_u64(&pk, "timeout_ms", 100);
        handle(&s, &req, &reply);
        msgpack_sbuffer_destroy(&reply);
        msgpack_sbuffer_destroy(&req);
        run_until(&s, &f, 1);
        assert_true(field(&f.u[0].data, "timed_out")->via.boolean);
        assert_int_equal(field(&f.u[0].data, "exit_status")->via.u64, 128 + SIGKILL);
        frames_clear(&f);

        request(&req, &pk, "exec", 2, 1);
        mp_pack_kv_strv(&pk, "argv", missing);
        handle(&s, &req, &reply);
        assert_true(reply.size > 0); /* refused at once */
        msgpack_sbuffer_destroy(&reply);
        msgpack_sbuffer_destroy(&req);
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_relay_marks_every_line),
                cmocka_unit_test(test_bundle_parse),
                cmocka_unit_test(test_net_parse),
                cmocka_unit_test(test_start_and_exec),
                cmocka_unit_test(test_start_refuses_a_bad_subdir),
                cmocka_unit_test(test_exec_timeout_kills),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
