/* oci_spec.c: config.json and process.json into oci_spec_t / oci_process_t: bounded, every refusal naming its field. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/oci/oci_spec.h"
#include "lib/nesting.h"
#include "lib/util.h"
#include "proto/agent_proc.h"

/* Wrong-type and out-of-range messages all read "FIELD: must be ...". */
static int bad(char **ret_error, const char *where, const char *field, const char *what) {
        return error_set(ret_error, -EINVAL, "%s%s%s: %s", where, *where && *field ? "." : "", field, what);
}

/* A string member: absent is fine (*ret stays NULL) unless required. */
static int get_str(const json_t *o, const char *where, const char *key, bool required, size_t max, char **ret,
                   char **ret_error) {
        const json_t *v = json_object_get(o, key);

        *ret = NULL;
        if (!v || json_is_null(v))
                return required ? bad(ret_error, where, key, "is required") : 0;
        if (!json_is_string(v))
                return bad(ret_error, where, key, "must be a string");
        if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
                return bad(ret_error, where, key, "is too long or holds a NUL byte");
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_bool(const json_t *o, const char *where, const char *key, bool *ret, char **ret_error) {
        const json_t *v = json_object_get(o, key);

        *ret = false;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_boolean(v))
                return bad(ret_error, where, key, "must be true or false");
        *ret = json_is_true(v);
        return 0;
}

/* A non-negative integer no larger than max. */
static int get_uint(const json_t *o, const char *where, const char *key, uint64_t max, uint64_t *ret,
                    char **ret_error) {
        const json_t *v = json_object_get(o, key);
        char what[64];

        *ret = 0;
        if (!v || json_is_null(v))
                return 0;
        snprintf(what, sizeof(what), "must be an integer from 0 to %" PRIu64, max);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
                return bad(ret_error, where, key, what);
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

/* An object member or nothing; anything else is refused. */
static int get_obj(const json_t *o, const char *where, const char *key, const json_t **ret, char **ret_error) {
        const json_t *v = json_object_get(o, key);

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return bad(ret_error, where, key, "must be an object");
        *ret = v;
        return 0;
}

static int get_strv(const json_t *o, const char *where, const char *key, bool nonempty, char ***ret, char **ret_error) {
        const json_t *v = json_object_get(o, key), *e;
        const char *what = nonempty ? "must be a non-empty array of strings" : "must be an array of strings";
        char **strv;
        size_t k;

        *ret = NULL;
        if (!v || json_is_null(v))
                return nonempty ? bad(ret_error, where, key, what) : 0;
        if (!json_is_array(v) || (nonempty && json_array_size(v) == 0))
                return bad(ret_error, where, key, what);
        if (json_array_size(v) > OCI_ARGS_MAX)
                return bad(ret_error, where, key, "has more than 1024 entries");
        strv = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!strv)
                return -ENOMEM;
        json_array_foreach(v, k, e) {
                if (!json_is_string(e) || json_string_length(e) > OCI_STR_MAX ||
                    strlen(json_string_value(e)) != json_string_length(e)) {
                        char field[80];

                        for (size_t j = 0; j < k; j++)
                                free(strv[j]);
                        free(strv);
                        snprintf(field, sizeof(field), "%s[%zu]", key, k);
                        return bad(ret_error, where, field, "must be a string of at most 64 KiB");
                }
                strv[k] = strdup(json_string_value(e));
                if (!strv[k]) {
                        for (size_t j = 0; j < k; j++)
                                free(strv[j]);
                        free(strv);
                        return -ENOMEM;
                }
        }
        *ret = strv;
        return 0;
}

static void strv_free(char **v) {
        for (size_t k = 0; v && v[k]; k++)
                free(v[k]);
        free(v);
}

static int parse_user(const json_t *u, const char *where, oci_process_t *p, char **ret_error) {
        const json_t *gids, *e;
        char field[160];
        uint64_t n;
        size_t k;
        int r;

        snprintf(field, sizeof(field), "%s.user", where);
        if ((r = get_uint(u, field, "uid", AGENT_PROC_ID_MAX, &n, ret_error)) < 0)
                return r;
        p->uid = (uint32_t)n;
        if ((r = get_uint(u, field, "gid", AGENT_PROC_ID_MAX, &n, ret_error)) < 0)
                return r;
        p->gid = (uint32_t)n;
        if (json_object_get(u, "username") && !json_is_null(json_object_get(u, "username")))
                return bad(ret_error, field, "username", "is not supported (give uid and gid)");
        gids = json_object_get(u, "additionalGids");
        if (!gids || json_is_null(gids))
                return 0;
        if (!json_is_array(gids) || json_array_size(gids) > OCI_GIDS_MAX)
                return bad(ret_error, field, "additionalGids", "must be an array of at most 64 group ids");
        p->additional_gids = calloc(json_array_size(gids) + 1, sizeof(uint32_t));
        if (!p->additional_gids)
                return -ENOMEM;
        json_array_foreach(gids, k, e) {
                if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > UINT32_MAX) {
                        snprintf(field, sizeof(field), "%s.user.additionalGids[%zu]", where, k);
                        return bad(ret_error, field, "", "must be an integer from 0 to 4294967295");
                }
                p->additional_gids[p->n_additional_gids++] = (uint32_t)json_integer_value(e);
        }
        return 0;
}

static int parse_rlimits(const json_t *a, const char *where, oci_process_t *p, char **ret_error) {
        const json_t *e;
        size_t k;
        int r;

        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a) || json_array_size(a) > OCI_RLIMITS_MAX)
                return bad(ret_error, where, "rlimits", "must be an array of at most 16 objects");
        p->rlimits = calloc(json_array_size(a) + 1, sizeof(oci_rlimit_t));
        if (!p->rlimits)
                return -ENOMEM;
        json_array_foreach(a, k, e) {
                oci_rlimit_t *l = &p->rlimits[k];
                char field[160];

                snprintf(field, sizeof(field), "%s.rlimits[%zu]", where, k);
                if (!json_is_object(e))
                        return bad(ret_error, field, "", "must be an object");
                p->n_rlimits = k + 1;
                if ((r = get_str(e, field, "type", true, 32, &l->type, ret_error)) < 0)
                        return r;
                if (agent_rlimit_from_string(l->type) < 0)
                        return bad(ret_error, field, "type", "must name a Linux RLIMIT_ resource");
                if ((r = get_uint(e, field, "soft", UINT64_MAX >> 1, &l->soft, ret_error)) < 0 ||
                    (r = get_uint(e, field, "hard", UINT64_MAX >> 1, &l->hard, ret_error)) < 0)
                        return r;
        }
        return 0;
}

int oci_process_parse(const json_t *o, const char *where, oci_process_t *ret, char **ret_error) {
        const json_t *user, *size;
        oci_process_t p = {};
        uint64_t n;
        int r;

        *ret = (oci_process_t){};
        if (!json_is_object(o))
                return bad(ret_error, where, "", "must be an object");
        if ((r = get_bool(o, where, "terminal", &p.terminal, ret_error)) < 0 ||
            (r = get_obj(o, where, "consoleSize", &size, ret_error)) < 0 ||
            (r = get_obj(o, where, "user", &user, ret_error)) < 0)
                goto fail;
        if (size) {
                char field[160];

                snprintf(field, sizeof(field), "%s.consoleSize", where);
                if ((r = get_uint(size, field, "height", UINT16_MAX, &n, ret_error)) < 0)
                        goto fail;
                p.rows = (uint32_t)n;
                if ((r = get_uint(size, field, "width", UINT16_MAX, &n, ret_error)) < 0)
                        goto fail;
                p.cols = (uint32_t)n;
        }
        if (user && (r = parse_user(user, where, &p, ret_error)) < 0)
                goto fail;
        if ((r = get_strv(o, where, "args", true, &p.args, ret_error)) < 0 ||
            (r = get_strv(o, where, "env", false, &p.env, ret_error)) < 0)
                goto fail;
        for (size_t k = 0; p.env && p.env[k]; k++)
                if (p.env[k][0] == '=' || !strchr(p.env[k], '=')) {
                        char field[80];

                        snprintf(field, sizeof(field), "env[%zu]", k);
                        r = bad(ret_error, where, field, "must be KEY=VALUE");
                        goto fail;
                }
        if (!p.env && !(p.env = calloc(1, sizeof(char *)))) {
                r = -ENOMEM;
                goto fail;
        }
        if ((r = get_str(o, where, "cwd", false, OCI_PATH_MAX, &p.cwd, ret_error)) < 0)
                goto fail;
        if (p.cwd && p.cwd[0] != '/') {
                r = bad(ret_error, where, "cwd", "must be an absolute path");
                goto fail;
        }
        if (!p.cwd && !(p.cwd = strdup("/"))) {
                r = -ENOMEM;
                goto fail;
        }
        if ((r = parse_rlimits(json_object_get(o, "rlimits"), where, &p, ret_error)) < 0 ||
            (r = get_bool(o, where, "noNewPrivileges", &p.no_new_privileges, ret_error)) < 0)
                goto fail;
        *ret = p;
        return 0;
fail:
        oci_process_done(&p);
        return r;
}

static int parse_mounts(const json_t *a, oci_spec_t *s, char **ret_error) {
        const json_t *e;
        size_t k;
        int r;

        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a) || json_array_size(a) > 1024)
                return bad(ret_error, "", "mounts", "must be an array of at most 1024 objects");
        s->mounts = calloc(json_array_size(a) + 1, sizeof(oci_mount_t));
        if (!s->mounts)
                return -ENOMEM;
        json_array_foreach(a, k, e) {
                oci_mount_t *m = &s->mounts[k];
                const json_t *opts, *opt;
                char field[64];
                size_t j;

                snprintf(field, sizeof(field), "mounts[%zu]", k);
                if (!json_is_object(e))
                        return bad(ret_error, field, "", "must be an object");
                s->n_mounts = k + 1;
                if ((r = get_str(e, field, "destination", true, OCI_PATH_MAX, &m->destination, ret_error)) < 0 ||
                    (r = get_str(e, field, "type", false, 64, &m->type, ret_error)) < 0 ||
                    (r = get_str(e, field, "source", false, OCI_PATH_MAX, &m->source, ret_error)) < 0)
                        return r;
                if (m->destination[0] != '/')
                        return bad(ret_error, field, "destination", "must be an absolute path");
                m->bind = m->type && streq(m->type, "bind");
                opts = json_object_get(e, "options");
                if (opts && !json_is_null(opts)) {
                        if (!json_is_array(opts) || json_array_size(opts) > 64)
                                return bad(ret_error, field, "options", "must be an array of at most 64 strings");
                        json_array_foreach(opts, j, opt) {
                                if (!json_is_string(opt))
                                        return bad(ret_error, field, "options", "must be an array of strings");
                                if (streq(json_string_value(opt), "bind") || streq(json_string_value(opt), "rbind"))
                                        m->bind = true;
                                else if (streq(json_string_value(opt), "ro"))
                                        m->readonly = true;
                                else if (streq(json_string_value(opt), "rw"))
                                        m->readonly = false;
                        }
                }
                if (m->bind && (!m->source || m->source[0] != '/'))
                        return bad(ret_error, field, "source", "a bind mount needs an absolute source path");
        }
        return 0;
}

static int parse_linux(const json_t *l, oci_spec_t *s, char **ret_error) {
        const json_t *res, *mem, *cpu, *ns, *e;
        size_t k;
        int r;

        if (!l)
                return 0;
        if ((r = get_obj(l, "linux", "resources", &res, ret_error)) < 0)
                return r;
        if (res) {
                if ((r = get_obj(res, "linux.resources", "memory", &mem, ret_error)) < 0 ||
                    (r = get_obj(res, "linux.resources", "cpu", &cpu, ret_error)) < 0)
                        return r;
                /* -1 is "unlimited" in the spec: no limit, the default size. */
                if (mem && json_is_integer(json_object_get(mem, "limit")) &&
                    json_integer_value(json_object_get(mem, "limit")) == -1)
                        mem = NULL;
                if (mem &&
                    (r = get_uint(mem, "linux.resources.memory", "limit", INT64_MAX, &s->memory_limit, ret_error)) < 0)
                        return r;
                if (cpu) {
                        const json_t *q = json_object_get(cpu, "quota");

                        if (q && !json_is_null(q)) {
                                if (!json_is_integer(q))
                                        return bad(ret_error, "linux.resources.cpu", "quota", "must be an integer");
                                s->cpu_quota = json_integer_value(q);
                        }
                        if ((r = get_uint(cpu, "linux.resources.cpu", "period", UINT32_MAX, &s->cpu_period,
                                          ret_error)) < 0)
                                return r;
                }
        }
        ns = json_object_get(l, "namespaces");
        if (!ns || json_is_null(ns))
                return 0;
        if (!json_is_array(ns) || json_array_size(ns) > 16)
                return bad(ret_error, "linux", "namespaces", "must be an array of at most 16 objects");
        json_array_foreach(ns, k, e) {
                char field[64];
                _cleanup_free_ char *type = NULL, *path = NULL;

                snprintf(field, sizeof(field), "linux.namespaces[%zu]", k);
                if (!json_is_object(e))
                        return bad(ret_error, field, "", "must be an object");
                if ((r = get_str(e, field, "type", true, 32, &type, ret_error)) < 0 ||
                    (r = get_str(e, field, "path", false, OCI_PATH_MAX, &path, ret_error)) < 0)
                        return r;
                if (streq(type, "network")) {
                        s->netns = true;
                        free(s->netns_path);
                        s->netns_path = TAKE_PTR(path);
                }
        }
        return 0;
}

int oci_spec_parse(const char *text, size_t size, oci_spec_t *ret, char **ret_error) {
        const json_t *root, *process, *l;
        json_error_t je;
        oci_spec_t s = {};
        json_t *j;
        char path[128];
        int r;

        *ret = (oci_spec_t){};
        if (ret_error)
                *ret_error = NULL;
        if (size > OCI_CONFIG_MAX)
                return error_set(ret_error, -EINVAL, "larger than %u bytes", OCI_CONFIG_MAX);
        if (json_nesting_check(text, size, path, sizeof(path)) == 1)
                return error_set(ret_error, -EINVAL, "%s: " HUSK_NESTING_REASON, path, HUSK_NESTING_MAX);
        j = json_loadb(text, size, JSON_REJECT_DUPLICATES, &je);
        if (!j)
                return error_set(ret_error, -EINVAL, "not JSON: line %d: %s", je.line, je.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return error_set(ret_error, -EINVAL, "must be a JSON object");
        }
        if ((r = get_str(j, "", "ociVersion", false, 64, &s.oci_version, ret_error)) < 0 ||
            (r = get_obj(j, "", "root", &root, ret_error)) < 0 ||
            (r = get_obj(j, "", "process", &process, ret_error)) < 0 ||
            (r = get_obj(j, "", "linux", &l, ret_error)) < 0)
                goto fail;
        if (!root) {
                r = bad(ret_error, "", "root", "is required");
                goto fail;
        }
        if ((r = get_str(root, "root", "path", true, OCI_PATH_MAX, &s.root_path, ret_error)) < 0 ||
            (r = get_bool(root, "root", "readonly", &s.root_readonly, ret_error)) < 0)
                goto fail;
        if (!s.root_path[0] || strchr(s.root_path, ',')) {
                r = bad(ret_error, "root", "path", "must be a non-empty path without ',' (virtiofsd option syntax)");
                goto fail;
        }
        if (!process) {
                r = bad(ret_error, "", "process", "is required");
                goto fail;
        }
        if ((r = oci_process_parse(process, "process", &s.process, ret_error)) < 0)
                goto fail;
        if ((r = get_str(j, "", "hostname", false, OCI_HOSTNAME_MAX, &s.hostname, ret_error)) < 0)
                goto fail;
        if ((r = parse_mounts(json_object_get(j, "mounts"), &s, ret_error)) < 0 ||
            (r = parse_linux(l, &s, ret_error)) < 0)
                goto fail;
        json_decref(j);
        *ret = s;
        return 0;
fail:
        json_decref(j);
        oci_spec_done(&s);
        return r;
}

int oci_process_parse_text(const char *text, size_t size, oci_process_t *ret, char **ret_error) {
        json_error_t je;
        char path[128];
        json_t *j;
        int r;

        *ret = (oci_process_t){};
        if (ret_error)
                *ret_error = NULL;
        if (size > OCI_CONFIG_MAX)
                return error_set(ret_error, -EINVAL, "larger than %u bytes", OCI_CONFIG_MAX);
        if (json_nesting_check(text, size, path, sizeof(path)) == 1)
                return error_set(ret_error, -EINVAL, "%s: " HUSK_NESTING_REASON, path, HUSK_NESTING_MAX);
        j = json_loadb(text, size, JSON_REJECT_DUPLICATES, &je);
        if (!j)
                return error_set(ret_error, -EINVAL, "not JSON: line %d: %s", je.line, je.text);
        r = oci_process_parse(j, "process", ret, ret_error);
        json_decref(j);
        return r;
}

void oci_process_done(oci_process_t *p) {
        strv_free(p->args);
        strv_free(p->env);
        free(p->cwd);
        free(p->additional_gids);
        for (size_t k = 0; k < p->n_rlimits; k++)
                free(p->rlimits[k].type);
        free(p->rlimits);
        *p = (oci_process_t){};
}

void oci_spec_done(oci_spec_t *s) {
        free(s->oci_version);
        free(s->root_path);
        oci_process_done(&s->process);
        free(s->hostname);
        for (size_t k = 0; k < s->n_mounts; k++) {
                free(s->mounts[k].destination);
                free(s->mounts[k].type);
                free(s->mounts[k].source);
        }
        free(s->mounts);
        free(s->netns_path);
        *s = (oci_spec_t){};
}

void oci_spec_vm_size(const oci_spec_t *s, uint32_t default_cpus, uint32_t default_memory_mib, uint32_t *ret_cpus,
                      uint32_t *ret_memory_mib) {
        uint64_t mib = default_memory_mib, cpus = default_cpus;

        if (s->memory_limit > 0) {
                mib = (s->memory_limit + (1u << 20) - 1) >> 20;
                if (mib < OCI_MEMORY_MIN_MIB)
                        mib = OCI_MEMORY_MIN_MIB;
                if (mib > OCI_MEMORY_MAX_MIB)
                        mib = default_memory_mib;
        }
        if (s->cpu_quota > 0) {
                uint64_t period = s->cpu_period ?: 100000;

                cpus = ((uint64_t)s->cpu_quota + period - 1) / period;
                if (cpus > 64)
                        cpus = 64;
        }
        *ret_cpus = (uint32_t)(cpus ?: 1);
        *ret_memory_mib = (uint32_t)mib;
}
