/* test_proc.c: protocol 2's processes, driven through agent_proto_handle and the loop hooks on this host: a created proc waits for proc.start, output is streamed per fd before proc.exited, stdin reaches it with eof, a terminal has the size asked, a missing program is not_found and leaves nothing, signals and proc.list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/mp.h"
#include "services/agent/agent.h"

#define FRAMES_MAX 4096

typedef struct frames {
        msgpack_unpacked u[FRAMES_MAX];
        msgpack_sbuffer bufs[FRAMES_MAX];
        size_t n;
} frames_t;

static void collect(msgpack_sbuffer *body, void *userdata) {
        frames_t *f = userdata;
        size_t off = 0;

        assert_true(f->n < FRAMES_MAX);
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

static const msgpack_object *frame_of(frames_t *f, const char *type, const char *proc) {
        for (size_t k = 0; k < f->n; k++)
                if (mp_str_eq(mp_map_get(&f->u[k].data, "type"), type) &&
                    (!proc || mp_str_eq(mp_map_get(&f->u[k].data, "proc"), proc)))
                        return &f->u[k].data;
        return NULL;
}

/* A host that reads nothing: the frames stay queued (agent_loop.c sets out_backlog from the
 * channel; here every frame is taken at once unless this holds them). */
static bool host_stalled;

/* The loop in miniature for up to ms, or until proc's proc.exited came (proc NULL: run ms). */
static void run(agent_state_t *s, frames_t *f, const char *proc, uint64_t ms) {
        uint64_t deadline = now_monotonic_ms() + ms;

        while (now_monotonic_ms() < deadline) {
                struct pollfd p[AGENT_IO_POLLFDS_MAX];
                int status, timeout;
                size_t n;
                pid_t pid;

                while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                        agent_child_exited(s, pid, status);
                if (!host_stalled)
                        s->out_backlog = 0;
                timeout = agent_io_finish(s, collect, f);
                if (proc && frame_of(f, AGENT_FRAME_PROC_EXITED, proc))
                        return;
                n = agent_io_pollfds(s, p, ELEMENTSOF(p));
                (void)poll(p, n, timeout < 0 || timeout > 20 ? 20 : timeout);
                agent_io_ready(s, p, n, collect, f);
        }
        if (proc)
                fail_msg("no proc.exited for %s", proc);
}

/* The answer to one packed request. */
static void handle(agent_state_t *s, msgpack_sbuffer *req, msgpack_unpacked *answer, msgpack_sbuffer *reply) {
        msgpack_unpacked u;
        size_t off = 0;

        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, req->data, req->size, &off), MSGPACK_UNPACK_SUCCESS);
        msgpack_sbuffer_init(reply);
        assert_int_equal(agent_proto_handle(s, &u.data, reply), 0);
        msgpack_unpacked_destroy(&u);
        msgpack_unpacked_init(answer);
        off = 0;
        if (reply->size)
                assert_int_equal(msgpack_unpack_next(answer, reply->data, reply->size, &off), MSGPACK_UNPACK_SUCCESS);
}

/* proc.create; returns the answer's type ("proc.create" or "error") and code in *code. */
static void create(agent_state_t *s, const char *name, char **args, const char *cwd, bool terminal, bool start,
                   char *code, size_t code_size) {
        char *env[] = { "PATH=/usr/bin:/bin", "GREETING=hi", NULL };
        agent_proc_create_t c = { .id = 1,
                                  .args = args,
                                  .env = env,
                                  .cwd = (char *)cwd,
                                  .terminal = terminal,
                                  .rows = 24,
                                  .cols = 80,
                                  .start = start };
        msgpack_sbuffer req, reply;
        msgpack_packer pk;
        msgpack_unpacked a;
        const msgpack_object *t;

        snprintf(c.proc, sizeof(c.proc), "%s", name);
        msgpack_sbuffer_init(&req);
        msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
        agent_proc_create_pack(&pk, &c);
        handle(s, &req, &a, &reply);
        t = mp_map_get(&a.data, "type");
        if (mp_str_eq(t, "error")) {
                const msgpack_object *k = mp_map_get(&a.data, "code");
                snprintf(code, code_size, "%.*s", (int)k->via.str.size, k->via.str.ptr);
        } else {
                assert_true(mp_str_eq(t, AGENT_FRAME_PROC_CREATE));
                assert_true(mp_str_eq(mp_map_get(&a.data, "proc"), name));
                assert_true(mp_map_get(&a.data, "pid")->via.u64 > 0);
                snprintf(code, code_size, "ok");
        }
        msgpack_unpacked_destroy(&a);
        msgpack_sbuffer_destroy(&reply);
        msgpack_sbuffer_destroy(&req);
}

/* A request packed by fn; the answer's "type" or error code into out. */
static void simple(agent_state_t *s, void (*fn)(msgpack_packer *pk, const void *arg), const void *arg, char *out,
                   size_t size) {
        msgpack_sbuffer req, reply;
        msgpack_packer pk;
        msgpack_unpacked a;
        const msgpack_object *t;

        msgpack_sbuffer_init(&req);
        msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
        fn(&pk, arg);
        handle(s, &req, &a, &reply);
        if (reply.size == 0)
                snprintf(out, size, "(none)");
        else {
                t = mp_map_get(&a.data, "type");
                if (mp_str_eq(t, "error"))
                        t = mp_map_get(&a.data, "code");
                snprintf(out, size, "%.*s", (int)t->via.str.size, t->via.str.ptr);
        }
        msgpack_unpacked_destroy(&a);
        msgpack_sbuffer_destroy(&reply);
        msgpack_sbuffer_destroy(&req);
}

static void pack_start(msgpack_packer *pk, const void *name) {
        agent_proc_ref_t r = { .id = 2 };
        snprintf(r.proc, sizeof(r.proc), "%s", (const char *)name);
        agent_proc_ref_pack(pk, AGENT_FRAME_PROC_START, &r);
}

static void pack_stdin(msgpack_packer *pk, const void *in) { agent_proc_stdin_pack(pk, in); }
static void pack_signal(msgpack_packer *pk, const void *sg) { agent_proc_signal_pack(pk, sg); }
static void pack_resize(msgpack_packer *pk, const void *rs) { agent_proc_resize_pack(pk, rs); }
static void pack_list(msgpack_packer *pk, const void *unused) { agent_proc_list_request_pack(pk, 9); }

/* Every proc.output of proc on fd, concatenated; *exited_after true when proc.exited came after
 * the last of them. */
static char *output_of(frames_t *f, const char *proc, int fd, bool *exited_after) {
        char *out = calloc(1, 4 << 20);
        size_t len = 0, last = 0;

        for (size_t k = 0; k < f->n; k++) {
                agent_proc_output_t o;

                if (agent_proc_output_unpack(&f->u[k].data, &o, NULL) == 0 && streq(o.proc, proc) && o.fd == fd) {
                        memcpy(out + len, o.data, o.size);
                        len += o.size;
                        last = k;
                }
                if (exited_after && mp_str_eq(mp_map_get(&f->u[k].data, "type"), AGENT_FRAME_PROC_EXITED) &&
                    mp_str_eq(mp_map_get(&f->u[k].data, "proc"), proc))
                        *exited_after = k > last;
        }
        return out;
}

static int64_t status_of(frames_t *f, const char *proc) {
        agent_proc_exited_t e;

        assert_int_equal(agent_proc_exited_unpack(frame_of(f, AGENT_FRAME_PROC_EXITED, proc), &e, NULL), 0);
        return e.status;
}

static void setup_state(agent_state_t *s) {
        sigset_t mask;

        /* As in the agent: SIGCHLD is read, not delivered. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        agent_state_init(s);
        s->no_switch_root = true;
}

static void teardown_state(agent_state_t *s) {
        for (size_t k = 0; k < AGENT_PROCS_MAX; k++)
                agent_proc_free(s->procs[k]);
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

static void test_created_waits_for_start(void **state) {
        char dir[] = "/tmp/test_proc.XXXXXX", file[64], code[32], *out, *err;
        char *args[] = { "sh", "-c", "echo out $GREETING; echo err >&2; touch started; exit 7", NULL };
        agent_state_t s;
        frames_t f = {};
        bool after = false;

        setup_state(&s);
        assert_non_null(mkdtemp(dir));
        snprintf(file, sizeof(file), "%s/started", dir);
        create(&s, "init", args, dir, false, false, code, sizeof(code));
        assert_string_equal(code, "ok");
        run(&s, &f, NULL, 300);
        assert_int_equal(access(file, F_OK), -1); /* not before proc.start */
        assert_int_equal(f.n, 0);
        simple(&s, pack_start, "init", code, sizeof(code));
        assert_string_equal(code, AGENT_FRAME_PROC_START);
        simple(&s, pack_start, "init", code, sizeof(code));
        assert_string_equal(code, AGENT_ERR_CONFLICT);
        simple(&s, pack_start, "nope", code, sizeof(code));
        assert_string_equal(code, AGENT_ERR_NOT_FOUND);
        run(&s, &f, "init", 10000);
        assert_int_equal(access(file, F_OK), 0);
        out = output_of(&f, "init", 1, &after);
        err = output_of(&f, "init", 2, NULL);
        assert_string_equal(out, "out hi\n");
        assert_string_equal(err, "err\n");
        assert_true(after);
        assert_int_equal(status_of(&f, "init"), 7);
        /* The name stays taken while the proc is kept. */
        create(&s, "init", args, dir, false, true, code, sizeof(code));
        assert_string_equal(code, AGENT_ERR_CONFLICT);
        free(out);
        free(err);
        frames_clear(&f);
        unlink(file);
        rmdir(dir);
        teardown_state(&s);
}

static void test_missing_program_is_not_found(void **state) {
        char *args[] = { "no-such-program-anywhere", NULL }, *abs[] = { "/nonexistent/x", NULL }, code[32], list[32];
        agent_state_t s;

        setup_state(&s);
        create(&s, "a", args, "/", false, false, code, sizeof(code));
        assert_string_equal(code, AGENT_ERR_NOT_FOUND);
        create(&s, "a", abs, "/", false, true, code, sizeof(code));
        assert_string_equal(code, AGENT_ERR_NOT_FOUND);
        /* A bad cwd is a setup failure, not a missing program. */
        create(&s, "a", (char *[]){ "sh", NULL }, "/nonexistent", false, true, code, sizeof(code));
        assert_string_equal(code, AGENT_ERR_FAILED);
        for (size_t k = 0; k < AGENT_PROCS_MAX; k++)
                assert_null(s.procs[k]);
        simple(&s, pack_list, NULL, list, sizeof(list));
        assert_string_equal(list, AGENT_FRAME_PROC_LIST);
        teardown_state(&s);
}

static void test_stdin_and_big_output(void **state) {
        char *cat[] = { "cat", NULL }, *big[] = { "sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x", NULL },
             code[32], *out;
        agent_proc_stdin_t in = { .proc = "cat", .data = (const uint8_t *)"hello\n", .size = 6 };
        agent_state_t s;
        frames_t f = {};

        setup_state(&s);
        create(&s, "cat", cat, "/", false, true, code, sizeof(code));
        assert_string_equal(code, "ok");
        simple(&s, pack_stdin, &in, code, sizeof(code));
        assert_string_equal(code, "(none)");
        /* A proc waiting at its gate holds none of cat's fds: cat's stdin still ends. */
        create(&s, "waiting", cat, "/", false, false, code, sizeof(code));
        assert_string_equal(code, "ok");
        in = (agent_proc_stdin_t){ .proc = "cat", .eof = true };
        simple(&s, pack_stdin, &in, code, sizeof(code));
        run(&s, &f, "cat", 10000);
        out = output_of(&f, "cat", 1, NULL);
        assert_string_equal(out, "hello\n");
        assert_int_equal(status_of(&f, "cat"), 0);
        free(out);
        frames_clear(&f);

        /* Bigger than any v1 cap, every byte, in 64 KiB frames at most. A host that does not
         * read stops the reading at the bound (the process blocks on its full pipe), and
         * nothing is lost when it reads again. */
        create(&s, "big", big, "/", false, true, code, sizeof(code));
        host_stalled = true;
        run(&s, &f, NULL, 1000);
        assert_true(s.out_backlog >= AGENT_PROC_BACKLOG_MAX);
        assert_true(s.out_backlog < AGENT_PROC_BACKLOG_MAX + AGENT_PROC_DATA_MAX + 64);
        assert_null(frame_of(&f, AGENT_FRAME_PROC_EXITED, "big"));
        host_stalled = false;
        run(&s, &f, "big", 20000);
        for (size_t k = 0; k < f.n; k++) {
                agent_proc_output_t o;

                if (agent_proc_output_unpack(&f.u[k].data, &o, NULL) == 0)
                        assert_true(o.size > 0 && o.size <= AGENT_PROC_DATA_MAX);
        }
        out = output_of(&f, "big", 1, NULL);
        assert_int_equal(strlen(out), 3000000);
        assert_int_equal(strspn(out, "x"), 3000000);
        free(out);
        frames_clear(&f);
        teardown_state(&s);
}

static void test_terminal_size_and_resize(void **state) {
        char *args[] = { "sh", "-c", "stty size; read x; stty size", NULL }, code[32], *out;
        agent_proc_resize_t rs = { .id = 3, .proc = "t", .rows = 50, .cols = 132 };
        agent_proc_stdin_t in = { .proc = "t", .data = (const uint8_t *)"go\n", .size = 3 };
        agent_state_t s;
        frames_t f = {};

        setup_state(&s);
        create(&s, "t", args, "/", true, true, code, sizeof(code));
        assert_string_equal(code, "ok");
        /* The first size is printed before it reads. */
        for (uint64_t end = now_monotonic_ms() + 10000; now_monotonic_ms() < end;) {
                run(&s, &f, NULL, 50);
                out = output_of(&f, "t", 1, NULL);
                bool seen = strstr(out, "24 80\r\n") != NULL;
                free(out);
                if (seen)
                        break;
        }
        simple(&s, pack_resize, &rs, code, sizeof(code));
        assert_string_equal(code, AGENT_FRAME_PROC_RESIZE);
        simple(&s, pack_stdin, &in, code, sizeof(code));
        run(&s, &f, "t", 10000);
        out = output_of(&f, "t", 1, NULL);
        assert_non_null(strstr(out, "24 80\r\n"));
        assert_non_null(strstr(out, "50 132\r\n"));
        free(out);
        frames_clear(&f);
        teardown_state(&s);
}

static void test_signal_and_list(void **state) {
        char *args[] = { "sleep", "100", NULL }, code[32];
        agent_proc_signal_t sg = { .id = 4, .proc = "s", .signal = SIGTERM };
        msgpack_sbuffer req, reply;
        msgpack_packer pk;
        msgpack_unpacked a;
        agent_proc_list_t l;
        agent_state_t s;
        frames_t f = {};
        pid_t pid;

        setup_state(&s);
        create(&s, "s", args, "/", false, true, code, sizeof(code));
        assert_string_equal(code, "ok");
        pid = s.procs[0]->pid;
        msgpack_sbuffer_init(&req);
        msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
        agent_proc_list_request_pack(&pk, 9);
        handle(&s, &req, &a, &reply);
        assert_int_equal(agent_proc_list_unpack(&a.data, &l, NULL), 0);
        assert_int_equal(l.n_procs, 1);
        assert_int_equal(l.procs[0].pid, (uint32_t)pid);
        assert_int_equal(l.procs[0].state, AGENT_PROC_RUNNING);
        bool found = false;
        for (size_t k = 0; k < l.n_pids; k++)
                found |= l.pids[k] == (uint32_t)pid;
        assert_true(found);
        agent_proc_list_clear(&l);
        msgpack_unpacked_destroy(&a);
        msgpack_sbuffer_destroy(&reply);

        simple(&s, pack_signal, &sg, code, sizeof(code));
        assert_string_equal(code, AGENT_FRAME_PROC_SIGNAL);
        run(&s, &f, "s", 10000);
        assert_int_equal(status_of(&f, "s"), 128 + SIGTERM);
        simple(&s, pack_signal, &sg, code, sizeof(code));
        assert_string_equal(code, AGENT_ERR_CONFLICT);

        handle(&s, &req, &a, &reply);
        assert_int_equal(agent_proc_list_unpack(&a.data, &l, NULL), 0);
        assert_int_equal(l.procs[0].state, AGENT_PROC_EXITED);
        assert_true(l.procs[0].has_status);
        assert_int_equal(l.procs[0].status, 143);
        agent_proc_list_clear(&l);
        msgpack_unpacked_destroy(&a);
        msgpack_sbuffer_destroy(&reply);
        msgpack_sbuffer_destroy(&req);
        frames_clear(&f);
        teardown_state(&s);
}

/* Stdin a process has partly taken is compacted when more comes: a process that always lags a
 * little must not grow the buffer by every byte it ever got. */
static void test_stdin_buffer_keeps_only_what_is_pending(void **state) {
        agent_proc_stdin_t in = { .proc = "lag", .data = (const uint8_t *)"xyz", .size = 3 };
        char code[32];
        agent_state_t s;
        agent_proc_t *p;
        int fds[2];

        setup_state(&s);
        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        p = agent_proc_new(&s);
        snprintf(p->name, sizeof(p->name), "lag");
        p->in_fd = fds[1];
        p->in.data = malloc(16);
        p->in.cap = 16;
        memcpy(p->in.data, "0123456789", 10);
        p->in.len = 10;
        p->in_off = 5; /* "01234" written already */
        simple(&s, pack_stdin, &in, code, sizeof(code));
        assert_int_equal(p->in_off, 0);
        assert_int_equal(p->in.len, 8);
        assert_memory_equal(p->in.data, "56789xyz", 8);
        close(fds[0]);
        teardown_state(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_created_waits_for_start),
                cmocka_unit_test(test_missing_program_is_not_found),
                cmocka_unit_test(test_stdin_and_big_output),
                cmocka_unit_test(test_terminal_size_and_resize),
                cmocka_unit_test(test_signal_and_list),
                cmocka_unit_test(test_stdin_buffer_keeps_only_what_is_pending),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
