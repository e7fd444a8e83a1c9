/* fuzz_agent_proc.c: libFuzzer target for the process frames of agent protocol 2: any body is refused or decodes within the bounds of proto/agent_proc.h, and what is accepted packs back, fits the schema and reads back the same. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/agent_proc.h"
#include "proto/schema.h"

typedef struct {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
} repacked_t;

static void repack_begin(repacked_t *r) {
        msgpack_sbuffer_init(&r->buf);
        msgpack_packer_init(&r->pk, &r->buf, msgpack_sbuffer_write);
        msgpack_unpacked_init(&r->u);
}

/* What was packed unpacks, and fits the schema's table for it. */
static const msgpack_object *repack_end(repacked_t *r, const proto_message_t *m) {
        proto_error_t e = {};

        assert(msgpack_unpack_next(&r->u, r->buf.data, r->buf.size, NULL) == MSGPACK_UNPACK_SUCCESS);
        assert(proto_check(m, &r->u.data, PROTO_CHECK_STRICT, &e) == 0);
        return &r->u.data;
}

static void repack_destroy(repacked_t *r) {
        msgpack_unpacked_destroy(&r->u);
        msgpack_sbuffer_destroy(&r->buf);
}

static void check_name(const char *name) { assert(agent_proc_name_valid(name)); }

static void fuzz_create(const msgpack_object *o) {
        agent_proc_create_t c, again;
        const char *field = NULL;
        repacked_t r;

        if (agent_proc_create_unpack(o, &c, &field) < 0) {
                assert(field && !c.args && !c.env && !c.cwd && !c.gids && !c.rlimits);
                return;
        }
        check_name(c.proc);
        assert(c.args[0] && c.args[0][0] && c.cwd[0] == '/' && strlen(c.cwd) <= AGENT_PROC_PATH_MAX);
        for (size_t k = 0; c.env[k]; k++)
                assert(c.env[k][0] != '=' && strchr(c.env[k], '='));
        assert(c.n_gids <= AGENT_PROC_GIDS_MAX && c.n_rlimits <= AGENT_PROC_RLIMITS_MAX);
        assert(c.uid <= AGENT_PROC_ID_MAX && c.gid <= AGENT_PROC_ID_MAX);
        for (size_t k = 0; k < c.n_rlimits; k++)
                assert(agent_rlimit_to_string(c.rlimits[k].resource));
        repack_begin(&r);
        agent_proc_create_pack(&r.pk, &c);
        assert(agent_proc_create_unpack(repack_end(&r, &proto_msg_agent_proc_create), &again, NULL) == 0);
        assert(again.id == c.id && streq(again.proc, c.proc) && streq(again.cwd, c.cwd));
        assert(mp_strv_len(again.args) == mp_strv_len(c.args) && mp_strv_len(again.env) == mp_strv_len(c.env));
        assert(again.n_gids == c.n_gids && again.n_rlimits == c.n_rlimits && again.start == c.start);
        assert(again.terminal == c.terminal && (!c.terminal || (again.rows == c.rows && again.cols == c.cols)));
        agent_proc_create_clear(&again);
        repack_destroy(&r);
        agent_proc_create_clear(&c);
}

static void fuzz_refs(const msgpack_object *o) {
        static const struct {
                const char *type;
                const proto_message_t *m;
        } kinds[] = {
                { AGENT_FRAME_PROC_START, &proto_msg_agent_proc_start },
                { AGENT_FRAME_PROC_RESIZE, &proto_msg_agent_proc_resize_answer },
                { AGENT_FRAME_PROC_SIGNAL, &proto_msg_agent_proc_signal_answer },
        };
        agent_proc_ref_t ref, again;
        repacked_t r;

        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
                if (agent_proc_ref_unpack(o, kinds[k].type, &ref, NULL) < 0)
                        continue;
                check_name(ref.proc);
                ref.has_pid = false; /* these carry no pid */
                repack_begin(&r);
                agent_proc_ref_pack(&r.pk, kinds[k].type, &ref);
                assert(agent_proc_ref_unpack(repack_end(&r, kinds[k].m), kinds[k].type, &again, NULL) == 0);
                assert(again.id == ref.id && streq(again.proc, ref.proc));
                repack_destroy(&r);
        }
        if (agent_proc_ref_unpack(o, AGENT_FRAME_PROC_CREATE, &ref, NULL) == 0 && ref.has_pid) {
                repack_begin(&r);
                agent_proc_ref_pack(&r.pk, AGENT_FRAME_PROC_CREATE, &ref);
                assert(agent_proc_ref_unpack(repack_end(&r, &proto_msg_agent_proc_create_answer),
                                             AGENT_FRAME_PROC_CREATE, &again, NULL) == 0);
                assert(again.pid == ref.pid);
                repack_destroy(&r);
        }
}

static void fuzz_streams(const msgpack_object *o) {
        agent_proc_stdin_t in, in2;
        agent_proc_output_t out, out2;
        repacked_t r;

        if (agent_proc_stdin_unpack(o, &in, NULL) == 0) {
                check_name(in.proc);
                assert(in.size <= AGENT_PROC_DATA_MAX && (!in.eof || in.size == 0));
                repack_begin(&r);
                agent_proc_stdin_pack(&r.pk, &in);
                assert(agent_proc_stdin_unpack(repack_end(&r, &proto_msg_agent_proc_stdin), &in2, NULL) == 0);
                assert(in2.eof == in.eof && in2.size == in.size && (!in.size || !memcmp(in2.data, in.data, in.size)));
                repack_destroy(&r);
        }
        if (agent_proc_output_unpack(o, &out, NULL) == 0) {
                check_name(out.proc);
                assert(out.size <= AGENT_PROC_DATA_MAX && (out.fd == 1 || out.fd == 2));
                repack_begin(&r);
                agent_proc_output_pack(&r.pk, &out);
                assert(agent_proc_output_unpack(repack_end(&r, &proto_msg_agent_proc_output), &out2, NULL) == 0);
                assert(out2.fd == out.fd && out2.size == out.size);
                repack_destroy(&r);
        }
}

static void fuzz_control(const msgpack_object *o) {
        agent_proc_resize_t rs, rs2;
        agent_proc_signal_t sg, sg2;
        agent_proc_exited_t ex, ex2;
        agent_proc_list_t l, l2;
        repacked_t r;

        if (agent_proc_resize_unpack(o, &rs, NULL) == 0) {
                repack_begin(&r);
                agent_proc_resize_pack(&r.pk, &rs);
                assert(agent_proc_resize_unpack(repack_end(&r, &proto_msg_agent_proc_resize), &rs2, NULL) == 0);
                assert(rs2.rows == rs.rows && rs2.cols == rs.cols);
                repack_destroy(&r);
        }
        if (agent_proc_signal_unpack(o, &sg, NULL) == 0) {
                assert(sg.signal >= 1 && sg.signal <= 64);
                repack_begin(&r);
                agent_proc_signal_pack(&r.pk, &sg);
                assert(agent_proc_signal_unpack(repack_end(&r, &proto_msg_agent_proc_signal), &sg2, NULL) == 0);
                assert(sg2.signal == sg.signal && sg2.all == sg.all);
                repack_destroy(&r);
        }
        if (agent_proc_exited_unpack(o, &ex, NULL) == 0) {
                repack_begin(&r);
                agent_proc_exited_pack(&r.pk, &ex);
                assert(agent_proc_exited_unpack(repack_end(&r, &proto_msg_agent_proc_exited), &ex2, NULL) == 0);
                assert(ex2.status == ex.status);
                repack_destroy(&r);
        }
        if (agent_proc_list_unpack(o, &l, NULL) == 0) {
                assert(l.n_procs <= AGENT_PROCS_MAX && l.n_pids <= AGENT_PROC_PIDS_MAX);
                for (size_t k = 0; k < l.n_procs; k++) {
                        check_name(l.procs[k].proc);
                        assert(agent_proc_state_to_string(l.procs[k].state));
                }
                repack_begin(&r);
                agent_proc_list_pack(&r.pk, &l);
                assert(agent_proc_list_unpack(repack_end(&r, &proto_msg_agent_proc_list_answer), &l2, NULL) == 0);
                assert(l2.n_procs == l.n_procs && l2.n_pids == l.n_pids);
                agent_proc_list_clear(&l2);
                repack_destroy(&r);
                agent_proc_list_clear(&l);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        msgpack_unpacked u;

        /* As the frame reader hands bodies out: checked before msgpack-c sees them. */
        if (mp_check(data, size) < 0)
                return 0;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, (const char *)data, size, NULL) == MSGPACK_UNPACK_SUCCESS) {
                fuzz_create(&u.data);
                fuzz_refs(&u.data);
                fuzz_streams(&u.data);
                fuzz_control(&u.data);
        }
        msgpack_unpacked_destroy(&u);
        return 0;
}
