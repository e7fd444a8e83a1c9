/* agent_proc.c: codecs of the process frames of agent protocol 2 (proc.create ... proc.list). */
#include "proto/agent_proc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/mp.h"
#include "lib/util.h"

#define SIGNAL_MAX 64 /* _NSIG - 1 on Linux */

/* Indexed by RLIMIT_*: the names OCI's process.rlimits uses. */
static const char *const rlimit_names[AGENT_PROC_RLIMITS_MAX] = {
        [RLIMIT_CPU] = "RLIMIT_CPU",           [RLIMIT_FSIZE] = "RLIMIT_FSIZE",
        [RLIMIT_DATA] = "RLIMIT_DATA",         [RLIMIT_STACK] = "RLIMIT_STACK",
        [RLIMIT_CORE] = "RLIMIT_CORE",         [RLIMIT_RSS] = "RLIMIT_RSS",
        [RLIMIT_NPROC] = "RLIMIT_NPROC",       [RLIMIT_NOFILE] = "RLIMIT_NOFILE",
        [RLIMIT_MEMLOCK] = "RLIMIT_MEMLOCK",   [RLIMIT_AS] = "RLIMIT_AS",
        [RLIMIT_LOCKS] = "RLIMIT_LOCKS",       [RLIMIT_SIGPENDING] = "RLIMIT_SIGPENDING",
        [RLIMIT_MSGQUEUE] = "RLIMIT_MSGQUEUE", [RLIMIT_NICE] = "RLIMIT_NICE",
        [RLIMIT_RTPRIO] = "RLIMIT_RTPRIO",     [RLIMIT_RTTIME] = "RLIMIT_RTTIME",
};

static const char *const state_names[_AGENT_PROC_STATE_MAX] = {
        [AGENT_PROC_CREATED] = "created",
        [AGENT_PROC_RUNNING] = "running",
        [AGENT_PROC_EXITED] = "exited",
};

bool agent_proc_name_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > AGENT_PROC_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-'))
                        return false;
        }
        return true;
}

int agent_rlimit_from_string(const char *s) {
        for (int i = 0; s && i < AGENT_PROC_RLIMITS_MAX; i++)
                if (rlimit_names[i] && streq(s, rlimit_names[i]))
                        return i;
        return -EINVAL;
}

const char *agent_rlimit_to_string(int resource) {
        return resource >= 0 && resource < AGENT_PROC_RLIMITS_MAX ? rlimit_names[resource] : NULL;
}

const char *agent_proc_state_to_string(agent_proc_state_t s) {
        return s < _AGENT_PROC_STATE_MAX ? state_names[s] : NULL;
}

/* ---- shared pieces ------------------------------------------------------------------------------ */

static void pack_type_id(msgpack_packer *pk, size_t pairs, const char *type, const uint64_t *id) {
        msgpack_pack_map(pk, pairs + (id ? 2 : 1));
        mp_pack_kv_str(pk, "type", type);
        if (id)
                mp_pack_kv_u64(pk, "id", *id);
}

static void pack_kv_bin(msgpack_packer *pk, const char *key, const uint8_t *data, size_t size) {
        mp_pack_str(pk, key);
        msgpack_pack_bin(pk, size);
        msgpack_pack_bin_body(pk, size ? (const char *)data : "", size);
}

static bool type_is(const msgpack_object *o, const char *type) {
        return o && o->type == MSGPACK_OBJECT_MAP && mp_str_eq(mp_map_get(o, "type"), type);
}

/* The proc name into a fixed buffer: required, valid. */
static bool get_name(const msgpack_object *o, agent_proc_name_t name) {
        const msgpack_object *v = mp_map_get(o, "proc");

        if (!v || v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 || v->via.str.size > AGENT_PROC_NAME_MAX)
                return false;
        memcpy(name, v->via.str.ptr, v->via.str.size);
        name[v->via.str.size] = '\0';
        return agent_proc_name_valid(name);
}

static bool get_bin(const msgpack_object *o, const char *key, const uint8_t **data, size_t *size) {
        const msgpack_object *v = mp_map_get(o, key);

        if (!v || v->type != MSGPACK_OBJECT_BIN || v->via.bin.size > AGENT_PROC_DATA_MAX)
                return false;
        *data = (const uint8_t *)v->via.bin.ptr;
        *size = v->via.bin.size;
        return true;
}

/* An optional bool: absent or nil is false. */
static bool get_opt_bool(const msgpack_object *o, const char *key, bool *ret) {
        int r = mp_get_bool(o, key, ret);

        if (r == -ENOENT)
                *ret = false;
        return r >= 0 || r == -ENOENT;
}

static bool get_u64_max(const msgpack_object *o, const char *key, uint64_t max, uint64_t *ret) {
        return mp_get_u64(o, key, ret) == 0 && *ret <= max;
}

/* ---- proc.create -------------------------------------------------------------------------------- */

void agent_proc_create_clear(agent_proc_create_t *c) {
        mp_strv_free(c->args);
        mp_strv_free(c->env);
        free(c->cwd);
        free(c->gids);
        free(c->rlimits);
        memset(c, 0, sizeof(*c));
}

void agent_proc_create_pack(msgpack_packer *pk, const agent_proc_create_t *c) {
        char *none[] = { NULL };

        pack_type_id(pk,
                     8 + (c->terminal ? 2 : 0) + (c->n_gids ? 1 : 0) + (c->n_rlimits ? 1 : 0) +
                             (c->no_new_privileges ? 1 : 0),
                     AGENT_FRAME_PROC_CREATE, &c->id);
        mp_pack_kv_str(pk, "proc", c->proc);
        mp_pack_kv_strv(pk, "args", c->args);
        mp_pack_kv_strv(pk, "env", c->env ? c->env : none);
        mp_pack_kv_str(pk, "cwd", c->cwd ? c->cwd : "/");
        mp_pack_kv_u64(pk, "uid", c->uid);
        mp_pack_kv_u64(pk, "gid", c->gid);
        if (c->n_gids) {
                mp_pack_str(pk, "additional_gids");
                msgpack_pack_array(pk, c->n_gids);
                for (size_t k = 0; k < c->n_gids; k++)
                        msgpack_pack_uint32(pk, c->gids[k]);
        }
        mp_pack_kv_bool(pk, "terminal", c->terminal);
        if (c->terminal) {
                mp_pack_kv_u64(pk, "rows", c->rows);
                mp_pack_kv_u64(pk, "cols", c->cols);
        }
        if (c->n_rlimits) {
                mp_pack_str(pk, "rlimits");
                msgpack_pack_array(pk, c->n_rlimits);
                for (size_t k = 0; k < c->n_rlimits; k++) {
                        msgpack_pack_map(pk, 3);
                        mp_pack_kv_str(pk, "type", agent_rlimit_to_string(c->rlimits[k].resource));
                        mp_pack_kv_u64(pk, "soft", c->rlimits[k].soft);
                        mp_pack_kv_u64(pk, "hard", c->rlimits[k].hard);
                }
        }
        if (c->no_new_privileges)
                mp_pack_kv_bool(pk, "no_new_privileges", true);
        mp_pack_kv_bool(pk, "start", c->start);
}

int agent_proc_create_unpack(const msgpack_object *o, agent_proc_create_t *c, const char **ret_field) {
        const char *field = "type";
        const msgpack_object *a;
        uint64_t u;

        memset(c, 0, sizeof(*c));
        if (!type_is(o, AGENT_FRAME_PROC_CREATE))
                goto malformed;
        field = "id";
        if (mp_get_u64(o, "id", &c->id) < 0)
                goto malformed;
        field = "proc";
        if (!get_name(o, c->proc))
                goto malformed;
        field = "args";
        if (mp_get_strv(o, "args", &c->args) < 0 || !c->args[0] || !c->args[0][0])
                goto malformed;
        field = "env";
        if (mp_get_strv(o, "env", &c->env) < 0)
                goto malformed;
        for (size_t k = 0; c->env[k]; k++)
                if (c->env[k][0] == '=' || !strchr(c->env[k], '='))
                        goto malformed;
        field = "cwd";
        if (mp_get_str(o, "cwd", AGENT_PROC_PATH_MAX, &c->cwd) < 0 || c->cwd[0] != '/')
                goto malformed;
        field = "uid";
        if (!get_u64_max(o, "uid", AGENT_PROC_ID_MAX, &u))
                goto malformed;
        c->uid = (uint32_t)u;
        field = "gid";
        if (!get_u64_max(o, "gid", AGENT_PROC_ID_MAX, &u))
                goto malformed;
        c->gid = (uint32_t)u;
        field = "additional_gids";
        a = mp_map_get(o, "additional_gids");
        if (a && (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > AGENT_PROC_GIDS_MAX))
                goto malformed;
        if (a && a->via.array.size > 0) {
                c->gids = calloc(a->via.array.size, sizeof(uint32_t));
                if (!c->gids)
                        goto malformed;
                for (uint32_t k = 0; k < a->via.array.size; k++) {
                        const msgpack_object *g = &a->via.array.ptr[k];

                        if (g->type != MSGPACK_OBJECT_POSITIVE_INTEGER || g->via.u64 > AGENT_PROC_ID_MAX)
                                goto malformed;
                        c->gids[c->n_gids++] = (uint32_t)g->via.u64;
                }
        }
        field = "terminal";
        if (mp_get_bool(o, "terminal", &c->terminal) < 0)
                goto malformed;
        if (c->terminal) {
                field = "rows";
                if (!get_u64_max(o, "rows", AGENT_PROC_TTY_MAX, &u))
                        goto malformed;
                c->rows = (uint16_t)u;
                field = "cols";
                if (!get_u64_max(o, "cols", AGENT_PROC_TTY_MAX, &u))
                        goto malformed;
                c->cols = (uint16_t)u;
        }
        field = "rlimits";
        a = mp_map_get(o, "rlimits");
        if (a && (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > AGENT_PROC_RLIMITS_MAX))
                goto malformed;
        if (a && a->via.array.size > 0) {
                c->rlimits = calloc(a->via.array.size, sizeof(agent_rlimit_t));
                if (!c->rlimits)
                        goto malformed;
                for (uint32_t k = 0; k < a->via.array.size; k++) {
                        const msgpack_object *e = &a->via.array.ptr[k], *t;
                        agent_rlimit_t *l = &c->rlimits[c->n_rlimits];
                        char name[32];

                        if (e->type != MSGPACK_OBJECT_MAP)
                                goto malformed;
                        t = mp_map_get(e, "type");
                        if (!t || t->type != MSGPACK_OBJECT_STR || t->via.str.size >= sizeof(name))
                                goto malformed;
                        memcpy(name, t->via.str.ptr, t->via.str.size);
                        name[t->via.str.size] = '\0';
                        l->resource = agent_rlimit_from_string(name);
                        if (l->resource < 0 || mp_get_u64(e, "soft", &l->soft) < 0 ||
                            mp_get_u64(e, "hard", &l->hard) < 0)
                                goto malformed;
                        c->n_rlimits++;
                }
        }
        field = "no_new_privileges";
        if (!get_opt_bool(o, "no_new_privileges", &c->no_new_privileges))
                goto malformed;
        field = "start";
        if (mp_get_bool(o, "start", &c->start) < 0)
                goto malformed;
        return 0;

malformed:
        agent_proc_create_clear(c);
        if (ret_field)
                *ret_field = field;
        return -EBADMSG;
}

/* ---- {type, id, proc[, pid]} ---------------------------------------------------------------------- */

void agent_proc_ref_pack(msgpack_packer *pk, const char *type, const agent_proc_ref_t *r) {
        pack_type_id(pk, 1 + (r->has_pid ? 1 : 0), type, &r->id);
        mp_pack_kv_str(pk, "proc", r->proc);
        if (r->has_pid)
                mp_pack_kv_u64(pk, "pid", r->pid);
}

int agent_proc_ref_unpack(const msgpack_object *o, const char *type, agent_proc_ref_t *r, const char **ret_field) {
        const char *field = "type";
        uint64_t u;
        int k;

        memset(r, 0, sizeof(*r));
        if (!type_is(o, type))
                goto malformed;
        field = "id";
        if (mp_get_u64(o, "id", &r->id) < 0)
                goto malformed;
        field = "proc";
        if (!get_name(o, r->proc))
                goto malformed;
        field = "pid";
        k = mp_get_u64(o, "pid", &u);
        if ((k < 0 && k != -ENOENT) || (k == 0 && u > UINT32_MAX))
                goto malformed;
        r->has_pid = k == 0;
        r->pid = k == 0 ? (uint32_t)u : 0;
        return 0;

malformed:
        memset(r, 0, sizeof(*r));
        if (ret_field)
                *ret_field = field;
        return -EBADMSG;
}

/* ---- proc.stdin, proc.output ------------------------------------------------------------------ */

void agent_proc_stdin_pack(msgpack_packer *pk, const agent_proc_stdin_t *s) {
        pack_type_id(pk, 2, AGENT_FRAME_PROC_STDIN, NULL);
        mp_pack_kv_str(pk, "proc", s->proc);
        if (s->eof)
                mp_pack_kv_bool(pk, "eof", true);
        else
                pack_kv_bin(pk, "data", s->data, s->size);
}

int agent_proc_stdin_unpack(const msgpack_object *o, agent_proc_stdin_t *s, const char **ret_field) {
        const char *field = "type";

        memset(s, 0, sizeof(*s));
        if (!type_is(o, AGENT_FRAME_PROC_STDIN))
                goto malformed;
        field = "proc";
        if (!get_name(o, s->proc))
                goto malformed;
        field = "eof";
        if (!get_opt_bool(o, "eof", &s->eof))
                goto malformed;
        /* One or the other: data that came with an eof would be dropped or reordered. */
        field = "data";
        if (s->eof ? mp_map_get(o, "data") != NULL : !get_bin(o, "data", &s->data, &s->size))
                goto malformed;
        return 0;

malformed:
        memset(s, 0, sizeof(*s));
        if (ret_field)
                *ret_field = field;
        return -EBADMSG;
}

void agent_proc_output_pack(msgpack_packer *pk, const agent_proc_output_t *out) {
        pack_type_id(pk, 3, AGENT_FRAME_PROC_OUTPUT, NULL);
        mp_pack_kv_str(pk, "proc", out->proc);
        mp_pack_kv_u64(pk, "fd", (uint64_t)out->fd);
        pack_kv_bin(pk, "data", out->data, out->size);
}

int agent_proc_output_unpack(const msgpack_object *o, agent_proc_output_t *out, const char **ret_field) {
        const char *field = "type";
        uint64_t fd;

        memset(out, 0, sizeof(*out));
        if (!type_is(o, AGENT_FRAME_PROC_OUTPUT))
                goto malformed;
        field = "proc";
        if (!get_name(o, out->proc))
                goto malformed;
        field = "fd";
        if (mp_get_u64(o, "fd", &fd) < 0 || (fd != 1 && fd != 2))
                goto malformed;
        out->fd = (int)fd;
        field = "data";
        if (!get_bin(o, "data", &out->data, &out->size))
                goto malformed;
        return 0;

malformed:
        memset(out, 0, sizeof(*out));
        if (ret_field)
                *ret_field = field;
        return -EBADMSG;
}

/* ---- proc.resize, proc.signal, proc.exited ---------------------------------------------------- */

void agent_proc_resize_pack(msgpack_packer *pk, const agent_proc_resize_t *r) {
        pack_type_id(pk, 3, AGENT_FRAME_PROC_RESIZE, &r->id);
        mp_pack_kv_str(pk, "proc", r->proc);
        mp_pack_kv_u64(pk, "rows", r->rows);
        mp_pack_kv_u64(pk, "cols", r->cols);
}

int agent_proc_resize_unpack(const msgpack_object *o, agent_proc_resize_t *r, const char **ret_field) {
        const char *field = "type";
        uint64_t u;

        memset(r, 0, sizeof(*r));
        if (!type_is(o, AGENT_FRAME_PROC_RESIZE))
                goto malformed;
        field = "id";
        if (mp_get_u64(o, "id", &r->id) < 0)
                goto malformed;
        field = "proc";
        if (!get_name(o, r->proc))
                goto malformed;
        field = "rows";
        if (!get_u64_max(o, "rows", AGENT_PROC_TTY_MAX, &u))
                goto malformed;
        r->rows = (uint16_t)u;
        field = "cols";
        if (!get_u64_max(o, "cols", AGENT_PROC_TTY_MAX, &u))
                goto malformed;
        r->cols = (uint16_t)u;
        return 0;

malformed:
        memset(r, 0, sizeof(*r));
        if (ret_field)
                *ret_field = field;
        return -EBADMSG;
}

void agent_proc_signal_pack(msgpack_packer *pk, const agent_proc_signal_t *s) {
        pack_type_id(pk, 2 + (s->all ? 1 : 0), AGENT_FRAME_PROC_SIGNAL, &s->id);
        mp_pack_kv_str(pk, "proc", s->proc);
        mp_pack_kv_u64(pk, "signal", s->signal);
        if (s->all)
                mp_pack_kv_bool(pk, "all", true);
}

int agent_proc_signal_unpack(const msgpack_object *o, agent_proc_signal_t *s, const char **ret_field) {
        const char *field = "type";
        uint64_t u;

        memset(s, 0, sizeof(*s));
        if (!type_is(o, AGENT_FRAME_PROC_SIGNAL))
                goto malformed;
        field = "id";
        if (mp_get_u64(o, "id", &s->id) < 0)
                goto malformed;
        field = "proc";
        if (!get_name(o, s->proc))
                goto malformed;
        field = "signal";
        if (!get_u64_max(o, "signal", SIGNAL_MAX, &u) || u == 0)
                goto malformed;
        s->signal = (uint32_t)u;
        field = "all";
        if (!get_opt_bool(o, "all", &s->all))
                goto malformed;
        return 0;

malformed:
        memset(s, 0, sizeof(*s));
        if (ret_field)
                *ret_field = field;
        return -EBADMSG;
}

void agent_proc_exited_pack(msgpack_packer *pk, const agent_proc_exited_t *e) {
        pack_type_id(pk, 2, AGENT_FRAME_PROC_EXITED, NULL);
        mp_pack_kv_str(pk, "proc", e->proc);
        mp_pack_kv_i64(pk, "status", e->status);
}

int agent_proc_exited_unpack(const msgpack_object *o, agent_proc_exited_t *e, const char **ret_field) {
        const char *field = "type";

        memset(e, 0, sizeof(*e));
        if (!type_is(o, AGENT_FRAME_PROC_EXITED))
                goto malformed;
        field = "proc";
        if (!get_name(o, e->proc))
                goto malformed;
        field = "status";
        if (mp_get_i64(o, "status", &e->status) < 0)
                goto malformed;
        return 0;

malformed:
        memset(e, 0, sizeof(*e));
        if (ret_field)
                *ret_field = field;
        return -EBADMSG;
}

/* ---- proc.list ---------------------------------------------------------------------------------- */

void agent_proc_list_request_pack(msgpack_packer *pk, uint64_t id) { pack_type_id(pk, 0, AGENT_FRAME_PROC_LIST, &id); }

void agent_proc_list_clear(agent_proc_list_t *l) {
        free(l->procs);
        free(l->pids);
        memset(l, 0, sizeof(*l));
}

void agent_proc_list_pack(msgpack_packer *pk, const agent_proc_list_t *l) {
        pack_type_id(pk, 2, AGENT_FRAME_PROC_LIST, &l->id);
        mp_pack_str(pk, "procs");
        msgpack_pack_array(pk, l->n_procs);
        for (size_t k = 0; k < l->n_procs; k++) {
                const agent_proc_info_t *p = &l->procs[k];

                msgpack_pack_map(pk, 3 + (p->has_status ? 1 : 0));
                mp_pack_kv_str(pk, "proc", p->proc);
                mp_pack_kv_u64(pk, "pid", p->pid);
                mp_pack_kv_str(pk, "state", agent_proc_state_to_string(p->state));
                if (p->has_status)
                        mp_pack_kv_i64(pk, "status", p->status);
        }
        mp_pack_str(pk, "pids");
        msgpack_pack_array(pk, l->n_pids);
        for (size_t k = 0; k < l->n_pids; k++)
                msgpack_pack_uint32(pk, l->pids[k]);
}

int agent_proc_list_unpack(const msgpack_object *o, agent_proc_list_t *l, const char **ret_field) {
        const char *field = "type";
        const msgpack_object *a;

        memset(l, 0, sizeof(*l));
        if (!type_is(o, AGENT_FRAME_PROC_LIST))
                goto malformed;
        field = "id";
        if (mp_get_u64(o, "id", &l->id) < 0)
                goto malformed;
        field = "procs";
        a = mp_map_get(o, "procs");
        if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > AGENT_PROCS_MAX)
                goto malformed;
        if (a->via.array.size > 0 && !(l->procs = calloc(a->via.array.size, sizeof(agent_proc_info_t))))
                goto malformed;
        for (uint32_t k = 0; k < a->via.array.size; k++) {
                const msgpack_object *e = &a->via.array.ptr[k];
                agent_proc_info_t *p = &l->procs[k];
                const msgpack_object *st;
                uint64_t pid;
                int r;

                if (e->type != MSGPACK_OBJECT_MAP || !get_name(e, p->proc) || mp_get_u64(e, "pid", &pid) < 0 ||
                    pid > UINT32_MAX)
                        goto malformed;
                p->pid = (uint32_t)pid;
                st = mp_map_get(e, "state");
                p->state = _AGENT_PROC_STATE_MAX;
                for (int s = 0; s < _AGENT_PROC_STATE_MAX; s++)
                        if (mp_str_eq(st, state_names[s]))
                                p->state = (agent_proc_state_t)s;
                if (p->state == _AGENT_PROC_STATE_MAX)
                        goto malformed;
                r = mp_get_i64(e, "status", &p->status);
                if (r < 0 && r != -ENOENT)
                        goto malformed;
                p->has_status = r == 0;
                l->n_procs++;
        }
        field = "pids";
        a = mp_map_get(o, "pids");
        if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > AGENT_PROC_PIDS_MAX)
                goto malformed;
        if (a->via.array.size > 0 && !(l->pids = calloc(a->via.array.size, sizeof(uint32_t))))
                goto malformed;
        for (uint32_t k = 0; k < a->via.array.size; k++) {
                const msgpack_object *p = &a->via.array.ptr[k];

                if (p->type != MSGPACK_OBJECT_POSITIVE_INTEGER || p->via.u64 > UINT32_MAX)
                        goto malformed;
                l->pids[l->n_pids++] = (uint32_t)p->via.u64;
        }
        return 0;

malformed:
        agent_proc_list_clear(l);
        if (ret_field)
                *ret_field = field;
        return -EBADMSG;
}
