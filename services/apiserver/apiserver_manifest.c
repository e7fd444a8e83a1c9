/* apiserver_manifest.c: one deployment manifest in, a normalized record or every violation out. */
#include "services/apiserver/apiserver_manifest_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "proto/names.h"

void manifest_violation(parse_ctx_t *c, const char *field, const char *fmt, ...) {
        char reason[1024];
        json_t *v;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);

        v = json_pack("{s:s, s:s}", "field", field, "reason", reason);
        if (!v || json_array_append_new(c->violations, v) < 0)
                c->oom = true;
}

/* Cut s to at most max bytes without splitting a UTF-8 sequence: reasons become JSON strings,
 * and jansson refuses invalid UTF-8. */
size_t manifest_utf8_prefix(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n <= max)
                return n;
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
                n--;
        return n;
}

/* The value as the user wrote it (JSON syntax, so strings come quoted), shortened for a message. */
const char *manifest_show(const json_t *v, char *buf, size_t size) {
        _cleanup_free_ char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        size_t n;

        if (!s)
                return "(value)";
        n = manifest_utf8_prefix(s, size - 4);
        snprintf(buf, size, "%.*s%s", (int)n, s, s[n] ? "..." : "");
        return buf;
}

/* "labels" + "app" -> "labels.app", shortened like manifest_show(). */
const char *manifest_field_path(char *buf, size_t size, const char *prefix, const char *key) {
        size_t n = manifest_utf8_prefix(key, size - strlen(prefix) - 5);

        snprintf(buf, size, "%s.%.*s%s", prefix, (int)n, key, key[n] ? "..." : "");
        return buf;
}

static const char *type_name(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "map";
        case JSON_ARRAY:
                return "list";
        case JSON_STRING:
                return "string";
        case JSON_INTEGER:
                return "integer";
        case JSON_REAL:
                return "number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "boolean";
        case JSON_NULL:
                return "null";
        }
        return "value";
}

void manifest_wrong_type(parse_ctx_t *c, const char *field, const char *expected, const json_t *v) {
        char q[96];

        if (json_is_object(v) || json_is_array(v))
                manifest_violation(c, field, "must be %s, got a %s", expected, type_name(v));
        else if (json_is_null(v))
                manifest_violation(c, field, "must be %s, got null", expected);
        else
                manifest_violation(c, field, "must be %s, got %s %s", expected, type_name(v),
                                   manifest_show(v, q, sizeof(q)));
}

static bool json_is_null_or_absent(const json_t *v) { return !v || json_is_null(v); }

void manifest_set_str(parse_ctx_t *c, char **dst, const char *s) {
        char *copy = strdup(s);

        if (!copy) {
                c->oom = true;
                return;
        }
        free(*dst);
        *dst = copy;
}

void manifest_keep(parse_ctx_t *c, const char *key, const json_t *v) {
        if (json_object_set_new(c->kept, key, json_deep_copy(v)) < 0)
                c->oom = true;
}

bool manifest_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n < 1 || n > MANIFEST_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');

                if (!alnum && !(ch == '-' && i > 0 && i < n - 1))
                        return false;
        }
        return true;
}

/* Paths name files on the host: absolute, without ".." so a manifest cannot climb out of a
 * directory an operator vetted, and bounded like PATH_MAX. */
static bool path_check(parse_ctx_t *c, const char *field, const json_t *v, const char *not_absolute_reason) {
        const char *s = json_string_value(v);
        char q[96];
        size_t n;

        if (!s) {
                manifest_wrong_type(c, field, "a string (an absolute path)", v);
                return false;
        }
        n = strlen(s);
        if (n == 0 || s[0] != '/') {
                manifest_violation(c, field, "%s %s", manifest_show(v, q, sizeof(q)), not_absolute_reason);
                return false;
        }
        if (n > MANIFEST_PATH_MAX) {
                manifest_violation(c, field, "is %zu bytes long; paths are limited to %d bytes", n, MANIFEST_PATH_MAX);
                return false;
        }
        for (const char *p = s; p; p = strchr(p + 1, '/'))
                if (p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0')) {
                        manifest_violation(c, field,
                                           "%s must not contain \"..\" components: give the path without them",
                                           manifest_show(v, q, sizeof(q)));
                        return false;
                }
        return true;
}

/* ---- top-level fields ------------------------------------------------------------------ */

static void parse_dns_label(parse_ctx_t *c, const char *key, const json_t *v, char **dst) {
        char q[96];

        if (!json_is_string(v))
                return manifest_wrong_type(c, key, "a string", v);
        if (!manifest_name_is_valid(json_string_value(v)))
                return manifest_violation(c, key,
                                          "%s is not a valid %s: use 1-63 lowercase letters, digits and '-', "
                                          "starting and ending with a letter or digit (e.g. \"my-app\")",
                                          manifest_show(v, q, sizeof(q)), key);
        manifest_set_str(c, dst, json_string_value(v));
}

static void parse_name(parse_ctx_t *c, const char *key, const json_t *v) { parse_dns_label(c, key, v, &c->m.name); }

static void parse_namespace(parse_ctx_t *c, const char *key, const json_t *v) {
        parse_dns_label(c, key, v, &c->m.namespace_);
}

/* The runtimes the schema lists, as a user reads them: "qemu" (the default) or "...". */
static const char *runtime_choices(char *buf, size_t size) {
        static const char *const runtimes[] = { PROTO_RUNTIMES };
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(runtimes) && n < size; i++)
                n += (size_t)snprintf(buf + n, size - n, "%s\"%s\"%s",
                                      i == 0                         ? ""
                                      : i + 1 < ELEMENTSOF(runtimes) ? ", "
                                                                     : " or ",
                                      runtimes[i], i == 0 ? " (the default)" : "");
        return buf;
}

static void parse_runtime(parse_ctx_t *c, const char *key, const json_t *v) {
        static const char *const supported[] = { PROTO_RUNTIMES };
        const char *s = json_string_value(v);
        char q[96], choices[160];

        if (!s)
                return manifest_wrong_type(c, key, "a string", v);
        for (size_t i = 0; i < ELEMENTSOF(supported); i++)
                if (streq(s, supported[i]))
                        return manifest_set_str(c, &c->m.runtime, s);
        /* Ring's default runtime; a Ring user switching over deserves the reason, not just a list. */
        if (streq(s, "docker"))
                return manifest_violation(
                        c, key, "\"docker\" is not supported: husk runs every deployment as a microVM; use %s",
                        runtime_choices(choices, sizeof(choices)));
        manifest_violation(c, key, "%s is not a supported runtime: use %s", manifest_show(v, q, sizeof(q)),
                           runtime_choices(choices, sizeof(choices)));
}

static void parse_kind(parse_ctx_t *c, const char *key, const json_t *v) {
        const char *s = json_string_value(v);
        char q[96];

        if (!s)
                return manifest_wrong_type(c, key, "a string", v);
        if (!streq(s, "worker") && !streq(s, "job"))
                return manifest_violation(c, key, "%s is not a supported kind: use \"worker\" (the default) or \"job\"",
                                          manifest_show(v, q, sizeof(q)));
        manifest_set_str(c, &c->m.kind, s);
}

static void parse_image(parse_ctx_t *c, const char *key, const json_t *v) {
        if (!path_check(c, key, v,
                        "is not an absolute path: husk boots VMs, not containers, and wants an absolute path "
                        "to a raw disk image or a rootfs/OCI bundle directory (Docker image references are "
                        "not supported)"))
                return;
        manifest_set_str(c, &c->m.image, json_string_value(v));
}

static void parse_kernel(parse_ctx_t *c, const char *key, const json_t *v) {
        if (!path_check(c, key, v,
                        "is not an absolute path: give the absolute path of a kernel image on the host, "
                        "or leave kernel out to boot the guest kit"))
                return;
        manifest_set_str(c, &c->m.kernel, json_string_value(v));
}

/* Disk images boot through firmware (as in Ring) unless `boot: kit` asks for the kit kernel. */
static void parse_boot(parse_ctx_t *c, const char *key, const json_t *v) {
        const char *s = json_string_value(v);
        char q[96];

        if (!s)
                return manifest_wrong_type(c, key, "a string", v);
        if (!streq(s, "firmware") && !streq(s, "kit"))
                return manifest_violation(c, key, "%s is not a boot mode: use \"firmware\" or \"kit\"",
                                          manifest_show(v, q, sizeof(q)));
        manifest_keep(c, key, v);
}

static void parse_replicas(parse_ctx_t *c, const char *key, const json_t *v) {
        json_int_t n;

        if (!json_is_integer(v))
                return manifest_wrong_type(c, key, "an integer", v);
        n = json_integer_value(v);
        if (n < 0 || n > MANIFEST_REPLICAS_MAX)
                return manifest_violation(c, key, "must be between 0 and %d, got %" JSON_INTEGER_FORMAT,
                                          MANIFEST_REPLICAS_MAX, n);
        c->m.replicas = (uint32_t)n;
}

/* ---- Ring fields husk stores unchanged ---------------------------------------------------- */

static void keep_string_list(parse_ctx_t *c, const char *key, const json_t *v) {
        size_t i;
        json_t *item;
        bool ok = true;

        if (!json_is_array(v))
                return manifest_wrong_type(c, key, "a list of strings", v);
        json_array_foreach(v, i, item) if (!json_is_string(item)) {
                char field[96];

                snprintf(field, sizeof(field), "%s[%zu]", key, i);
                manifest_wrong_type(c, field, "a string", item);
                ok = false;
        }
        if (ok)
                manifest_keep(c, key, v);
}

static const struct {
        const char *name;
        field_fn parse;
} fields[] = {
        { "name", parse_name },
        { "namespace", parse_namespace },
        { "runtime", parse_runtime },
        { "kind", parse_kind },
        { "image", parse_image },
        { "kernel", parse_kernel },
        { "boot", parse_boot },
        { "replicas", parse_replicas },
        { "resources", manifest_parse_resources },
        { "labels", manifest_parse_labels },
        /* Ring's other deployment fields: each honoured (kept in the spec for the daemons that
         * act on it), accepted with an IgnoredField warning, or refused: never kept unread. */
        { "environment", manifest_parse_environment },
        { "secrets", manifest_parse_secrets },
        { "config", manifest_parse_config },
        { "network", manifest_parse_network },
        { "command", keep_string_list },
        { "args", keep_string_list },
        { "ports", manifest_parse_ports },
        { "volumes", manifest_parse_volumes },
        { "health_checks", manifest_parse_health_checks },
};

static void unknown_field(parse_ctx_t *c, const char *key) {
        char list[512] = "";
        size_t len = 0;

        /* Users paste the whole Ring file; say what to send instead of listing fields. */
        if (streq(key, "deployments"))
                return manifest_violation(c, key,
                                          "unknown field: send one deployment (the value of one entry under "
                                          "deployments:), not the whole manifest");
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", fields[i].name);
        manifest_violation(c, key, "unknown field: a deployment has %s", list);
}

/* The spec compared on re-apply: the Ring fields as given, every field husk interprets in its
 * canonical form, defaults written out, so equivalent manifests compare equal. */
static json_t *build_spec(const parse_ctx_t *c) {
        _cleanup_(json_decrefp) json_t *spec = json_deep_copy(c->kept);
        const manifest_t *m = &c->m;

        if (!spec)
                return NULL;
        if (json_object_set_new(spec, "name", json_string(m->name)) < 0 ||
            json_object_set_new(spec, "namespace", json_string(m->namespace_)) < 0 ||
            json_object_set_new(spec, "runtime", json_string(m->runtime)) < 0 ||
            json_object_set_new(spec, "kind", json_string(m->kind)) < 0 ||
            json_object_set_new(spec, "image", json_string(m->image)) < 0 ||
            (m->kernel && json_object_set_new(spec, "kernel", json_string(m->kernel)) < 0) ||
            json_object_set_new(spec, "replicas", json_integer(m->replicas)) < 0 ||
            json_object_set(spec, "labels", m->labels) < 0 ||
            json_object_set_new(spec, "resources", manifest_resources_json(c)) < 0)
                return NULL;
        return TAKE_PTR(spec);
}

static int set_defaults(parse_ctx_t *c) {
        static const struct {
                size_t offset;
                const char *value;
        } defaults[] = {
                { offsetof(manifest_t, namespace_), "default" },
                { offsetof(manifest_t, runtime), PROTO_RUNTIME_DEFAULT },
                { offsetof(manifest_t, kind), "worker" },
        };

        for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
                char **p = (char **)((char *)&c->m + defaults[i].offset);
                if (!*p)
                        manifest_set_str(c, p, defaults[i].value);
        }
        return c->oom ? -ENOMEM : 0;
}

void manifest_clear(manifest_t *m) {
        free(m->namespace_);
        free(m->name);
        free(m->runtime);
        free(m->kind);
        free(m->image);
        free(m->kernel);
        json_decref(m->labels);
        json_decref(m->spec);
        *m = (manifest_t){};
}

int manifest_parse(const json_t *input, manifest_t *ret, json_t **ret_violations) {
        parse_ctx_t c = {
                .m = { .replicas = 1, .cpus = MANIFEST_DEFAULT_CPUS, .memory_mib = MANIFEST_DEFAULT_MEMORY_MIB },
                .violations = json_array(),
                .kept = json_object(),
        };
        const char *key;
        json_t *value;
        int r = 0;

        c.m.labels = json_object();
        if (!c.violations || !c.kept || !c.m.labels) {
                r = -ENOMEM;
                goto finish;
        }

        if (!json_is_object(input))
                manifest_wrong_type(&c, "deployment", "a map of deployment fields", input);
        else
                json_object_foreach((json_t *)input, key, value) {
                        size_t i;

                        for (i = 0; i < ELEMENTSOF(fields); i++)
                                if (streq(key, fields[i].name))
                                        break;
                        if (i == ELEMENTSOF(fields))
                                unknown_field(&c, key);
                        else if (!json_is_null(value)) /* YAML `ports:` with nothing after it */
                                fields[i].parse(&c, key, value);
                }

        /* Absent or null (YAML `name:` with nothing after it) alike; a bad value was reported above. */
        if (json_is_object(input) && json_is_null_or_absent(json_object_get(input, "name")))
                manifest_violation(&c, "name",
                                   "is required: give the deployment a name of lowercase letters, digits and '-' "
                                   "(e.g. \"my-app\")");
        if (json_is_object(input) && json_is_null_or_absent(json_object_get(input, "image")))
                manifest_violation(
                        &c, "image",
                        "is required: an absolute path to a raw disk image or a rootfs/OCI bundle directory");

        if (json_is_object(input))
                manifest_check_workload(&c, input);
        if (json_is_object(input))
                manifest_check_image(&c, input);
        if (json_is_object(input))
                manifest_check_boot(&c, input);
        if (json_is_object(input))
                manifest_check_ports(&c, input);
        if (json_is_object(input))
                manifest_check_volumes(&c, input);

        if (c.oom) {
                r = -ENOMEM;
                goto finish;
        }
        if (json_array_size(c.violations) > 0) {
                *ret_violations = TAKE_PTR(c.violations);
                r = -EINVAL;
                goto finish;
        }
        r = set_defaults(&c);
        if (r < 0)
                goto finish;
        c.m.spec = build_spec(&c);
        if (!c.m.spec) {
                r = -ENOMEM;
                goto finish;
        }
        *ret = c.m;
        c.m = (manifest_t){};
finish:
        manifest_clear(&c.m);
        json_decref(c.violations);
        json_decref(c.kept);
        json_decref(c.requests);
        return r;
}
