/* config.c: load /etc/husk/config.yaml through one table of keys (see config.h). */
#include "lib/config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lib/log.h"
#include "lib/util.h"

#ifndef HUSK_UIDIR
#define HUSK_UIDIR "/usr/local/share/husk/ui"
#endif
#ifndef HUSK_KITDIR
#define HUSK_KITDIR "/usr/local/share/husk/kit"
#endif

static const char *const daemon_names[_HUSK_DAEMON_MAX] = {
        [HUSK_DAEMON_APISERVER] = "apiserver",
        [HUSK_DAEMON_SCHEDULER] = "scheduler",
        [HUSK_DAEMON_VMM_DRIVER] = "vmm-driver",
        [HUSK_DAEMON_NETD] = "netd",
        [HUSK_DAEMON_LOGD] = "logd",
};

const char *husk_daemon_name(husk_daemon_t d) { return d < _HUSK_DAEMON_MAX ? daemon_names[d] : NULL; }

const char *husk_config_path(const char *from_cmdline) {
        const char *e;

        if (from_cmdline)
                return from_cmdline;
        e = getenv("HUSK_CONFIG");
        return e && *e ? e : HUSK_DEFAULT_CONFIG;
}

typedef enum key_type {
        KEY_STRING,
        KEY_BOOL,
        KEY_DURATION, /* uint64_t ms */
        KEY_SIZE,     /* uint64_t bytes */
        KEY_U32,
        KEY_LOG_LEVEL, /* int */
        KEY_ENUM,      /* char *, one of key->choices */
} key_type_t;

typedef struct config_key {
        const char *path; /* dotted path in the YAML document */
        key_type_t type;
        size_t offset;              /* into husk_config_t */
        const char *const *choices; /* KEY_ENUM: NULL-terminated */
        uint32_t min;               /* KEY_U32: smallest accepted value */
} config_key_t;

static const char *const accel_choices[] = { "kvm", "tcg", "auto", NULL };
static const char *const seccomp_choices[] = { "true", "false", "log", NULL };
static const char *const log_format_choices[] = { "text", "json", NULL };
static const char *const forwarder_choices[] = { "nft", "proxy", "auto", NULL };

#define O(field) offsetof(husk_config_t, field)
#define BUS_KEYS(name, idx)                                                        \
        { "bus." name ".events", KEY_STRING, O(bus[idx].events), NULL, 0 }, {      \
                "bus." name ".requests", KEY_STRING, O(bus[idx].requests), NULL, 0 \
        }
#define RUNTIME_KEYS(name, field)                                                                                  \
        { "runtime." name ".enabled", KEY_BOOL, O(field.enabled), NULL, 0 },                                       \
                { "runtime." name ".binary_path", KEY_STRING, O(field.binary_path), NULL, 0 },                     \
                { "runtime." name ".max_console_log_bytes", KEY_SIZE, O(field.max_console_log_bytes), NULL, 0 }, { \
                "runtime." name ".max_console_log_backups", KEY_U32, O(field.max_console_log_backups), NULL, 0     \
        }

static const config_key_t config_keys[] = {
        { "state_dir", KEY_STRING, O(state_dir), NULL, 0 },
        { "runtime_dir", KEY_STRING, O(runtime_dir), NULL, 0 },
        { "log_level", KEY_LOG_LEVEL, O(log_level), NULL, 0 },
        { "log_format", KEY_ENUM, O(log_format), log_format_choices, 0 },
        BUS_KEYS("apiserver", HUSK_DAEMON_APISERVER),
        BUS_KEYS("scheduler", HUSK_DAEMON_SCHEDULER),
        BUS_KEYS("vmm-driver", HUSK_DAEMON_VMM_DRIVER),
        BUS_KEYS("netd", HUSK_DAEMON_NETD),
        BUS_KEYS("logd", HUSK_DAEMON_LOGD),
        { "apiserver.listen", KEY_STRING, O(apiserver.listen), NULL, 0 },
        { "apiserver.database", KEY_STRING, O(apiserver.database), NULL, 0 },
        { "apiserver.socket_group", KEY_STRING, O(apiserver.socket_group), NULL, 0 },
        { "apiserver.tls.cert", KEY_STRING, O(apiserver.tls_cert), NULL, 0 },
        { "apiserver.tls.key", KEY_STRING, O(apiserver.tls_key), NULL, 0 },
        { "apiserver.webhooks.max_attempts", KEY_U32, O(apiserver.webhooks.max_attempts), NULL, 1 },
        { "apiserver.webhooks.timeout", KEY_DURATION, O(apiserver.webhooks.timeout_ms), NULL, 0 },
        { "apiserver.webhooks.backoff_initial", KEY_DURATION, O(apiserver.webhooks.backoff_initial_ms), NULL, 0 },
        { "apiserver.webhooks.backoff_max", KEY_DURATION, O(apiserver.webhooks.backoff_max_ms), NULL, 0 },
        { "apiserver.webhooks.concurrency", KEY_U32, O(apiserver.webhooks.concurrency), NULL, 1 },
        { "apiserver.secrets_key_file", KEY_STRING, O(apiserver.secrets_key_file), NULL, 0 },
        { "apiserver.ui_dir", KEY_STRING, O(apiserver.ui_dir), NULL, 0 },
        { "apiserver.metrics_auth", KEY_BOOL, O(apiserver.metrics_auth), NULL, 0 },
        { "scheduler.resync_interval", KEY_DURATION, O(scheduler.resync_interval_ms), NULL, 0 },
        { "scheduler.request_timeout", KEY_DURATION, O(scheduler.request_timeout_ms), NULL, 0 },
        { "scheduler.host_memory", KEY_SIZE, O(scheduler.host_memory_bytes), NULL, 0 },
        { "scheduler.create_concurrency", KEY_U32, O(scheduler.create_concurrency), NULL, 1 },
        { "scheduler.progress_deadline", KEY_DURATION, O(scheduler.progress_deadline_ms), NULL, 0 },
        { "vmm_driver.instances_dir", KEY_STRING, O(vmm_driver.instances_dir), NULL, 0 },
        { "vmm_driver.stop_timeout", KEY_DURATION, O(vmm_driver.stop_timeout_ms), NULL, 0 },
        { "vmm_driver.default_cpus", KEY_U32, O(vmm_driver.default_cpus), NULL, 1 },
        { "vmm_driver.default_memory_mib", KEY_U32, O(vmm_driver.default_memory_mib), NULL, 128 },
        { "vmm_driver.templates.qemu", KEY_BOOL, O(vmm_driver.templates_qemu), NULL, 0 },
        { "vmm_driver.templates.dir", KEY_STRING, O(vmm_driver.templates_dir), NULL, 0 },
        { "vmm_driver.templates.pool", KEY_U32, O(vmm_driver.templates_pool), NULL, 0 },
        { "vmm_driver.metrics_interval", KEY_DURATION, O(vmm_driver.metrics_interval_ms), NULL, 0 },
        { "netd.subnet", KEY_STRING, O(netd.subnet), NULL, 0 },
        { "netd.forwarder", KEY_ENUM, O(netd.forwarder), forwarder_choices, 0 },
        { "netd.outbound_nat", KEY_BOOL, O(netd.outbound_nat), NULL, 0 },
        { "logd.dir", KEY_STRING, O(logd.dir), NULL, 0 },
        { "logd.retained_instances", KEY_U32, O(logd.retained_instances), NULL, 0 },
        { "kit.kernel", KEY_STRING, O(kit.kernel), NULL, 0 },
        { "kit.initrd", KEY_STRING, O(kit.initrd), NULL, 0 },
        RUNTIME_KEYS("qemu", qemu),
        { "runtime.qemu.accel", KEY_ENUM, O(qemu.accel), accel_choices, 0 },
        { "runtime.qemu.firmware_path", KEY_STRING, O(qemu.firmware_path), NULL, 0 },
        { "runtime.qemu.tcg_translation_cache", KEY_SIZE, O(qemu.tcg_translation_cache), NULL, 0 },
        RUNTIME_KEYS("cloud_hypervisor", cloud_hypervisor),
        { "runtime.cloud_hypervisor.firmware_path", KEY_STRING, O(cloud_hypervisor.firmware_path), NULL, 0 },
        { "runtime.cloud_hypervisor.socket_dir", KEY_STRING, O(cloud_hypervisor.socket_dir), NULL, 0 },
        { "runtime.cloud_hypervisor.seccomp", KEY_ENUM, O(cloud_hypervisor.seccomp), seccomp_choices, 0 },
};

/* A runtime's name (as deployments and instance specs spell it) and its section; the first
 * is the default runtime's. */
static const struct {
        const char *name;
        size_t offset;
} runtime_sections[] = {
        { "qemu", O(qemu) },
        { "cloud-hypervisor", O(cloud_hypervisor) },
};

const husk_runtime_config_t *husk_config_runtime(const husk_config_t *c, const char *name) {
        if (!name)
                return (const husk_runtime_config_t *)((const char *)c + runtime_sections[0].offset);
        for (size_t k = 0; k < ELEMENTSOF(runtime_sections); k++)
                if (streq(name, runtime_sections[k].name))
                        return (const husk_runtime_config_t *)((const char *)c + runtime_sections[k].offset);
        return NULL;
}

void husk_config_free(husk_config_t *c) {
        if (!c)
                return;
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (config_keys[i].type == KEY_STRING || config_keys[i].type == KEY_ENUM)
                        free(*(char **)((char *)c + config_keys[i].offset));
        free(c->path);
        free(c);
}

/* Set *field to value unless the file set it. */
static int set_default(char **field, const char *value) {
        if (*field)
                return 0;
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

/* Fill every key the file left unset. Paths derive from state_dir and runtime_dir, so a test
 * that sets only those two gets a self-contained stack. */
static int apply_defaults(husk_config_t *c) {
        char buf[PATH_MAX];
        int r = 0;

#define JOIN(fmt, ...) (snprintf(buf, sizeof(buf), fmt, __VA_ARGS__) < (int)sizeof(buf) ? buf : "")
        r |= set_default(&c->state_dir, "/var/lib/husk");
        r |= set_default(&c->log_format, "text");
        r |= set_default(&c->runtime_dir, HUSK_DEFAULT_RUNTIME_DIR);
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++) {
                r |= set_default(&c->bus[d].events, JOIN("ipc://%s/%s.events", c->runtime_dir, daemon_names[d]));
                r |= set_default(&c->bus[d].requests, JOIN("ipc://%s/%s.requests", c->runtime_dir, daemon_names[d]));
        }
        r |= set_default(&c->apiserver.listen, "127.0.0.1:3030");
        r |= set_default(&c->apiserver.socket_group, "");
        r |= set_default(&c->apiserver.database, JOIN("%s/husk.db", c->state_dir));
        r |= set_default(&c->apiserver.secrets_key_file, JOIN("%s/secrets.key", c->state_dir));
        r |= set_default(&c->apiserver.ui_dir, HUSK_UIDIR);
        r |= set_default(&c->vmm_driver.instances_dir, JOIN("%s/instances", c->state_dir));
        r |= set_default(&c->vmm_driver.templates_dir, JOIN("%s/templates", c->runtime_dir));
        r |= set_default(&c->netd.subnet, "10.42.0.0/16");
        r |= set_default(&c->netd.forwarder, "auto");
        r |= set_default(&c->logd.dir, JOIN("%s/logs", c->state_dir));
        r |= set_default(&c->kit.kernel, HUSK_KITDIR "/vmlinux");
        r |= set_default(&c->kit.initrd, HUSK_KITDIR "/initrd.gz");
        r |= set_default(&c->qemu.binary_path, "qemu-system-x86_64");
        r |= set_default(&c->qemu.accel, "auto");
        /* Debian's ovmf; its variables template (OVMF_VARS_4M.fd) lies next to it. */
        r |= set_default(&c->qemu.firmware_path, "/usr/share/OVMF/OVMF_CODE_4M.fd");
        r |= set_default(&c->cloud_hypervisor.binary_path, "cloud-hypervisor");
        r |= set_default(&c->cloud_hypervisor.socket_dir, JOIN("%s/cloud-hypervisor", c->runtime_dir));
#undef JOIN
        return r ? -ENOMEM : 0;
}

static husk_config_t *config_new_unset(void) {
        husk_config_t *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->log_level = LOG_INFO;
        c->apiserver.webhooks.max_attempts = 10;
        c->apiserver.webhooks.timeout_ms = 10000;
        c->apiserver.webhooks.backoff_initial_ms = 5000;
        c->apiserver.webhooks.backoff_max_ms = 3600000;
        c->apiserver.webhooks.concurrency = 16;
        c->scheduler.resync_interval_ms = 30000;
        c->scheduler.request_timeout_ms = 5000;
        c->scheduler.create_concurrency = 32;
        c->scheduler.progress_deadline_ms = 300000;
        c->vmm_driver.stop_timeout_ms = 10000;
        c->vmm_driver.default_cpus = 1;
        c->vmm_driver.default_memory_mib = 256;
        c->vmm_driver.metrics_interval_ms = 5000;
        c->logd.retained_instances = 3;
        c->qemu.enabled = true;
        c->qemu.max_console_log_bytes = 10 * 1024 * 1024;
        c->qemu.max_console_log_backups = 3;
        /* QEMU's own default is 1 GiB, of which an idle kit guest's boot touches ~47 MiB that
         * stay resident: a third of the host's cost of a small VM (tests/bench/bench_density.py). */
        c->qemu.tcg_translation_cache = 16 * 1024 * 1024;
        c->cloud_hypervisor.max_console_log_bytes = 10 * 1024 * 1024;
        c->cloud_hypervisor.max_console_log_backups = 3;
        return c;
}

int husk_config_new_default(husk_config_t **ret) {
        husk_config_t *c = config_new_unset();
        int r;

        if (!c)
                return -ENOMEM;
        r = apply_defaults(c);
        if (r < 0) {
                husk_config_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

typedef struct loader {
        const char *file;
        yaml_document_t *doc;
        husk_config_t *config;
        char *error; /* first error, for the user */
} loader_t;

static int loader_fail(loader_t *l, const yaml_node_t *node, const char *key, const char *fmt, ...) _printf_(4, 5);
static int loader_fail(loader_t *l, const yaml_node_t *node, const char *key, const char *fmt, ...) {
        char reason[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        if (!l->error &&
            asprintf(&l->error, "%s:%zu: %s: %s", l->file, node ? node->start_mark.line + 1 : 0, key, reason) < 0)
                l->error = NULL;
        return -EINVAL;
}

static const config_key_t *find_key(const char *path) {
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (streq(config_keys[i].path, path))
                        return &config_keys[i];
        return NULL;
}

/* Is path a section, i.e. the dotted prefix of at least one key? */
static bool is_section(const char *path) {
        size_t n = strlen(path);

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (strncmp(config_keys[i].path, path, n) == 0 && config_keys[i].path[n] == '.')
                        return true;
        return false;
}

static int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off", "0" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (streq(s, yes[i])) {
                        *ret = true;
                        return 0;
                }
                if (streq(s, no[i])) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

/* YAML's null ("key: ~", "key: null"), which no path or name may be: without this check
 * "state_dir: ~" made a directory literally named "~". Quoted "~" is a string. */
static bool scalar_is_null(const yaml_node_t *node) {
        static const char *const nulls[] = { "~", "null", "Null", "NULL" };
        const char *v = (const char *)node->data.scalar.value;

        if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(nulls); i++)
                if (streq(v, nulls[i]))
                        return true;
        return false;
}

static int set_value(loader_t *l, const config_key_t *k, const yaml_node_t *node) {
        void *field = (char *)l->config + k->offset;
        const char *v;
        uint64_t u;
        int r;

        if (node->type != YAML_SCALAR_NODE)
                return loader_fail(l, node, k->path, "expected a single value, not a %s",
                                   node->type == YAML_MAPPING_NODE ? "mapping" : "list");
        v = (const char *)node->data.scalar.value;

        switch (k->type) {
        case KEY_STRING:
                if (!*v || scalar_is_null(node))
                        return loader_fail(l, node, k->path, "must not be empty");
                free(*(char **)field);
                *(char **)field = strdup(v);
                return *(char **)field ? 0 : -ENOMEM;
        case KEY_ENUM:
                for (const char *const *c = k->choices; *c; c++)
                        if (streq(v, *c)) {
                                free(*(char **)field);
                                *(char **)field = strdup(v);
                                return *(char **)field ? 0 : -ENOMEM;
                        }
                {
                        char list[128] = "";
                        for (const char *const *c = k->choices; *c; c++)
                                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                                         c == k->choices ? "" : ", ", *c);
                        return loader_fail(l, node, k->path, "must be one of %s, got '%s'", list, v);
                }
        case KEY_BOOL:
                if (parse_bool(v, (bool *)field) < 0)
                        return loader_fail(l, node, k->path, "must be true or false, got '%s'", v);
                return 0;
        case KEY_DURATION:
                if (parse_duration_ms(v, (uint64_t *)field) < 0)
                        return loader_fail(l, node, k->path, "must be a duration such as 500ms, 10s or 2m, got '%s'",
                                           v);
                return 0;
        case KEY_SIZE:
                if (parse_size_bytes(v, (uint64_t *)field) < 0)
                        return loader_fail(l, node, k->path, "must be a size such as 10485760, 10Mi or 1Gi, got '%s'",
                                           v);
                return 0;
        case KEY_U32:
                r = parse_u64(v, &u);
                if (r == -ERANGE || (r >= 0 && u > UINT32_MAX))
                        return loader_fail(l, node, k->path, "must be at most %u, got %s", UINT32_MAX, v);
                if (r < 0)
                        return loader_fail(l, node, k->path, "must be a whole number, got '%s'", v);
                if (u < k->min)
                        return loader_fail(l, node, k->path, "must be at least %u, got %s", k->min, v);
                *(uint32_t *)field = (uint32_t)u;
                return 0;
        case KEY_LOG_LEVEL:
                r = log_level_from_string(v);
                if (r < 0)
                        return loader_fail(l, node, k->path,
                                           "must be one of error, warning, notice, info, debug, got '%s'", v);
                *(int *)field = r;
                return 0;
        }
        return -EINVAL;
}

static int load_mapping(loader_t *l, const yaml_node_t *map, const char *prefix) {
        if (map->type != YAML_MAPPING_NODE)
                return loader_fail(l, map, *prefix ? prefix : "(top level)", "expected a mapping of keys");

        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = yaml_document_get_node(l->doc, p->key);
                yaml_node_t *vn = yaml_document_get_node(l->doc, p->value);
                char path[256];
                const config_key_t *k;
                int r;

                if (!kn || !vn || kn->type != YAML_SCALAR_NODE)
                        return loader_fail(l, kn ? kn : map, *prefix ? prefix : "(top level)",
                                           "keys must be plain strings");
                if ((size_t)snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
                                     (const char *)kn->data.scalar.value) >= sizeof(path))
                        return loader_fail(l, kn, *prefix ? prefix : "(top level)", "key too long");

                k = find_key(path);
                if (k)
                        r = set_value(l, k, vn);
                else if (is_section(path))
                        r = load_mapping(l, vn, path);
                else
                        r = loader_fail(l, kn, path, "unknown key");
                if (r < 0)
                        return r;
        }
        return 0;
}

int husk_config_load(const char *path, husk_config_t **ret, char **ret_error) {
        yaml_parser_t parser;
        yaml_document_t doc;
        FILE *f;
        loader_t l = { .file = path };
        yaml_node_t *root;
        int r;

        f = fopen(path, "re");
        if (!f) {
                r = -errno;
                if (r == -ENOENT && streq(path, HUSK_DEFAULT_CONFIG))
                        return husk_config_new_default(ret);
                if (ret_error && asprintf(ret_error, "%s: cannot open: %s", path, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }

        l.config = config_new_unset();
        if (!l.config) {
                fclose(f);
                return -ENOMEM;
        }
        yaml_parser_initialize(&parser);
        yaml_parser_set_input_file(&parser, f);
        if (!yaml_parser_load(&parser, &doc)) {
                if (asprintf(&l.error, "%s:%zu:%zu: invalid YAML: %s", path, parser.problem_mark.line + 1,
                             parser.problem_mark.column + 1, parser.problem ? parser.problem : "parse error") < 0)
                        l.error = NULL;
                yaml_parser_delete(&parser);
                fclose(f);
                r = -EINVAL;
                goto fail;
        }
        l.doc = &doc;
        root = yaml_document_get_root_node(&doc);
        r = 0;
        /* An empty file (or one holding only "~") means all defaults. */
        if (root && !(root->type == YAML_SCALAR_NODE &&
                      (root->data.scalar.length == 0 || streq((char *)root->data.scalar.value, "~"))))
                r = load_mapping(&l, root, "");
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        fclose(f);
        if (r < 0)
                goto fail;

        r = apply_defaults(l.config);
        if (r < 0)
                goto fail;
        l.config->path = strdup(path);
        if (!l.config->path) {
                r = -ENOMEM;
                goto fail;
        }
        *ret = l.config;
        return 0;

fail:
        husk_config_free(l.config);
        if (ret_error)
                *ret_error = l.error;
        else
                free(l.error);
        return r;
}
