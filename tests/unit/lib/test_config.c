/* test_config.c: the config file as users write it: every mistake is reported as
 * "FILE:LINE: KEY: REASON", and every key lands in the struct. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/util.h"
#include "tests/unit/require.h"

typedef struct fixture {
        char dir[64];
        char path[128]; /* <dir>/config.yaml */
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));

        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-config.XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->path, sizeof(f->path), "%s/config.yaml", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;

        unlink(f->path);
        rmdir(f->dir);
        free(f);
        return 0;
}

static void write_config(fixture_t *f, const char *yaml) {
        FILE *fp = fopen(f->path, "we");

        assert_non_null(fp);
        assert_true(fputs(yaml, fp) >= 0);
        assert_int_equal(fclose(fp), 0);
}

static husk_config_t *load_ok(fixture_t *f, const char *yaml) {
        husk_config_t *c = NULL;
        char *error = NULL;
        int r;

        write_config(f, yaml);
        r = husk_config_load(f->path, &c, &error);
        if (r < 0)
                fail_msg("load failed (%d): %s", r, error ? error : "(no message)");
        assert_null(error);
        assert_non_null(c);
        assert_string_equal(c->path, f->path);
        return c;
}

/* Loading yaml fails with -EINVAL and the message "<path>:<want>". */
static void assert_error(fixture_t *f, const char *yaml, const char *want) {
        husk_config_t *c = NULL;
        char *error = NULL, *full = NULL;

        write_config(f, yaml);
        assert_int_equal(husk_config_load(f->path, &c, &error), -EINVAL);
        assert_null(c);
        assert_non_null(error);
        assert_true(asprintf(&full, "%s:%s", f->path, want) > 0);
        assert_string_equal(error, full);
        free(full);
        free(error);

        /* The same failure without asking for the message (nothing leaks). */
        assert_int_equal(husk_config_load(f->path, &c, NULL), -EINVAL);
        assert_null(c);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_error_unknown_top_level_key(void **state) {
        assert_error(*state, "state_dir: /srv/husk\ncolour: red\n", "2: colour: unknown key");
        assert_error(*state, "# husk\n\nStateDir: /srv\n", "3: StateDir: unknown key");
}

static void test_error_unknown_nested_key(void **state) {
        assert_error(*state,
                     "runtime:\n"
                     "  qemu:\n"
                     "    enabled: true\n"
                     "    acel: kvm\n",
                     "4: runtime.qemu.acel: unknown key");
        /* Keys of one runtime are not accepted under the other. */
        assert_error(*state, "runtime:\n  qemu:\n    seccomp: log\n", "3: runtime.qemu.seccomp: unknown key");
        assert_error(*state, "runtime:\n  cloud_hypervisor:\n    accel: kvm\n",
                     "3: runtime.cloud_hypervisor.accel: unknown key");
        assert_error(*state, "runtime:\n  firecracker:\n    enabled: true\n", "2: runtime.firecracker: unknown key");
        /* Daemon names are spelled with a dash on the bus. */
        assert_error(*state, "bus:\n  vmm_driver:\n    events: ipc:///x\n", "2: bus.vmm_driver: unknown key");
        assert_error(*state, "bus:\n  scheduler:\n    event: ipc:///x\n", "3: bus.scheduler.event: unknown key");
        assert_error(*state, "vmm_driver:\n  stop_timeout_ms: 10\n", "2: vmm_driver.stop_timeout_ms: unknown key");
}

static void test_error_enum(void **state) {
        assert_error(*state, "runtime:\n  qemu:\n    accel: kvmm\n",
                     "3: runtime.qemu.accel: must be one of kvm, tcg, auto, got 'kvmm'");
        assert_error(*state, "runtime:\n  qemu:\n    accel: KVM\n",
                     "3: runtime.qemu.accel: must be one of kvm, tcg, auto, got 'KVM'");
        assert_error(*state, "runtime:\n  cloud_hypervisor:\n    seccomp: maybe\n",
                     "3: runtime.cloud_hypervisor.seccomp: must be one of true, false, log, got 'maybe'");
        assert_error(*state, "log_level: verbose\n",
                     "1: log_level: must be one of error, warning, notice, info, debug, got 'verbose'");
}

static void test_error_duration(void **state) {
        assert_error(*state, "scheduler:\n  resync_interval: 10 seconds\n",
                     "2: scheduler.resync_interval: must be a duration such as 500ms, 10s or 2m, got '10 seconds'");
        assert_error(*state, "scheduler:\n  request_timeout: 1.5s\n",
                     "2: scheduler.request_timeout: must be a duration such as 500ms, 10s or 2m, got '1.5s'");
        assert_error(*state, "vmm_driver:\n  stop_timeout: -5s\n",
                     "2: vmm_driver.stop_timeout: must be a duration such as 500ms, 10s or 2m, got '-5s'");
        assert_error(*state, "vmm_driver:\n  stop_timeout: 99999999999999999999h\n",
                     "2: vmm_driver.stop_timeout: must be a duration such as 500ms, 10s or 2m, "
                     "got '99999999999999999999h'");
}

static void test_error_size(void **state) {
        assert_error(*state, "runtime:\n  qemu:\n    max_console_log_bytes: 10MB\n",
                     "3: runtime.qemu.max_console_log_bytes: must be a size such as 10485760, 10Mi or 1Gi, "
                     "got '10MB'");
        assert_error(*state, "runtime:\n  cloud_hypervisor:\n    max_console_log_bytes: lots\n",
                     "3: runtime.cloud_hypervisor.max_console_log_bytes: must be a size such as 10485760, "
                     "10Mi or 1Gi, got 'lots'");
}

static void test_error_bool(void **state) {
        assert_error(*state, "runtime:\n  cloud_hypervisor:\n    enabled: maybe\n",
                     "3: runtime.cloud_hypervisor.enabled: must be true or false, got 'maybe'");
        assert_error(*state, "runtime:\n  qemu:\n    enabled: 2\n",
                     "3: runtime.qemu.enabled: must be true or false, got '2'");
}

static void test_error_u32(void **state) {
        assert_error(*state, "vmm_driver:\n  default_memory_mib: 64\n",
                     "2: vmm_driver.default_memory_mib: must be at least 128, got 64");
        assert_error(*state, "vmm_driver:\n  default_cpus: 0\n",
                     "2: vmm_driver.default_cpus: must be at least 1, got 0");
        assert_error(*state, "vmm_driver:\n  default_cpus: two\n",
                     "2: vmm_driver.default_cpus: must be a whole number, got 'two'");
        assert_error(*state, "vmm_driver:\n  default_cpus: -1\n",
                     "2: vmm_driver.default_cpus: must be a whole number, got '-1'");
        assert_error(*state, "runtime:\n  qemu:\n    max_console_log_backups: 4294967296\n",
                     "3: runtime.qemu.max_console_log_backups: must be at most 4294967295, got 4294967296");
        assert_error(*state, "vmm_driver:\n  default_memory_mib: 99999999999999999999999\n",
                     "2: vmm_driver.default_memory_mib: must be at most 4294967295, got 99999999999999999999999");
}

static void test_error_shape(void **state) {
        /* A mapping or a list where one value belongs; the line is where the value starts. */
        assert_error(*state, "state_dir:\n  path: /srv\n", "2: state_dir: expected a single value, not a mapping");
        assert_error(*state, "kit:\n  kernel: [a, b]\n", "2: kit.kernel: expected a single value, not a list");
        assert_error(*state, "runtime:\n  qemu:\n    accel:\n      - kvm\n",
                     "4: runtime.qemu.accel: expected a single value, not a list");
        /* And a single value where a section belongs. */
        assert_error(*state, "runtime: qemu\n", "1: runtime: expected a mapping of keys");
        assert_error(*state, "bus:\n  apiserver: ipc:///x\n", "2: bus.apiserver: expected a mapping of keys");
        assert_error(*state, "- state_dir\n- runtime_dir\n", "1: (top level): expected a mapping of keys");
        assert_error(*state, "? [a, b]\n: c\n", "1: (top level): keys must be plain strings");
        assert_error(*state, "runtime:\n  ? {a: 1}\n  : c\n", "2: runtime: keys must be plain strings");
        {
                char yaml[400];
                memset(yaml, 'k', 300);
                snprintf(yaml + 300, sizeof(yaml) - 300, ": 1\n");
                assert_error(*state, yaml, "1: (top level): key too long");
        }
}

static void test_error_empty_value(void **state) {
        assert_error(*state, "state_dir: ''\n", "1: state_dir: must not be empty");
        assert_error(*state, "apiserver:\n  database:\n", "2: apiserver.database: must not be empty");
        /* YAML's null is no path either (not a directory named "~"). */
        assert_error(*state, "state_dir: ~\n", "1: state_dir: must not be empty");
        assert_error(*state, "runtime_dir: null\n", "1: runtime_dir: must not be empty");
}

static void test_error_yaml_syntax(void **state) {
        assert_error(*state, "state_dir: /srv\n\tlog_level: info\n",
                     "2:1: invalid YAML: found a tab character that violates indentation");
        assert_error(*state, "state_dir: /a\n  bad: x\n",
                     "2:6: invalid YAML: mapping values are not allowed in this context");
        assert_error(*state, "state_dir: /srv\nkit: {kernel: /k\n",
                     "3:1: invalid YAML: did not find expected ',' or '}'");
}

static void test_error_first_wins(void **state) {
        assert_error(*state,
                     "log_level: info\n"
                     "vmm_driver:\n"
                     "  default_cpus: 0\n"
                     "  bogus: 1\n"
                     "colour: red\n",
                     "3: vmm_driver.default_cpus: must be at least 1, got 0");
}

static void test_missing_explicit_file(void **state) {
        fixture_t *f = *state;
        husk_config_t *c = NULL;
        char *error = NULL, *want = NULL;

        assert_int_equal(husk_config_load(f->path, &c, &error), -ENOENT);
        assert_null(c);
        assert_true(asprintf(&want, "%s: cannot open: No such file or directory", f->path) > 0);
        assert_string_equal(error, want);
        free(want);
        free(error);
}

/* ---- defaults and overrides ------------------------------------------------------------------ */

static void assert_defaults(const husk_config_t *c) {
        assert_string_equal(c->state_dir, "/var/lib/husk");
        assert_string_equal(c->runtime_dir, "/run/husk");
        assert_int_equal(c->log_level, LOG_INFO);
        assert_string_equal(c->bus[HUSK_DAEMON_APISERVER].events, "ipc:///run/husk/apiserver.events");
        assert_string_equal(c->bus[HUSK_DAEMON_APISERVER].requests, "ipc:///run/husk/apiserver.requests");
        assert_string_equal(c->bus[HUSK_DAEMON_SCHEDULER].events, "ipc:///run/husk/scheduler.events");
        assert_string_equal(c->bus[HUSK_DAEMON_SCHEDULER].requests, "ipc:///run/husk/scheduler.requests");
        assert_string_equal(c->bus[HUSK_DAEMON_VMM_DRIVER].events, "ipc:///run/husk/vmm-driver.events");
        assert_string_equal(c->bus[HUSK_DAEMON_VMM_DRIVER].requests, "ipc:///run/husk/vmm-driver.requests");
        assert_string_equal(c->apiserver.listen, "127.0.0.1:3030");
        assert_string_equal(c->apiserver.database, "/var/lib/husk/husk.db");
        assert_int_equal(c->scheduler.resync_interval_ms, 30000);
        assert_int_equal(c->scheduler.request_timeout_ms, 5000);
        assert_string_equal(c->vmm_driver.instances_dir, "/var/lib/husk/instances");
        assert_int_equal(c->vmm_driver.stop_timeout_ms, 10000);
        assert_int_equal(c->vmm_driver.default_cpus, 1);
        assert_int_equal(c->vmm_driver.default_memory_mib, 256);
        assert_string_equal(c->kit.kernel, HUSK_KITDIR "/vmlinux");
        assert_string_equal(c->kit.initrd, HUSK_KITDIR "/initrd.gz");

        assert_true(c->qemu.enabled);
        assert_string_equal(c->qemu.binary_path, "qemu-system-x86_64");
        assert_string_equal(c->qemu.accel, "auto");
        assert_int_equal(c->qemu.tcg_translation_cache, 16 * 1024 * 1024);
        assert_string_equal(c->qemu.firmware_path, "/usr/share/OVMF/OVMF_CODE_4M.fd"); /* Debian's ovmf */
        assert_int_equal(c->qemu.max_console_log_bytes, 10 * 1024 * 1024);
        assert_int_equal(c->qemu.max_console_log_backups, 3);

        assert_false(c->cloud_hypervisor.enabled);
        assert_string_equal(c->cloud_hypervisor.binary_path, "cloud-hypervisor");
        assert_string_equal(c->cloud_hypervisor.socket_dir, "/run/husk/cloud-hypervisor");
        assert_null(c->cloud_hypervisor.firmware_path);
        assert_null(c->cloud_hypervisor.seccomp); /* the VMM's own default */
        assert_int_equal(c->cloud_hypervisor.max_console_log_bytes, 10 * 1024 * 1024);
        assert_int_equal(c->cloud_hypervisor.max_console_log_backups, 3);
}

static void test_new_default(void **state) {
        husk_config_t *c = NULL;

        assert_int_equal(husk_config_new_default(&c), 0);
        assert_defaults(c);
        husk_config_free(c);
}

static void test_empty_file_gives_defaults(void **state) {
        static const char *const empties[] = { "", "\n\n", "# nothing here yet\n", "~\n", "---\n" };

        for (size_t i = 0; i < ELEMENTSOF(empties); i++) {
                husk_config_t *c = load_ok(*state, empties[i]);
                assert_defaults(c);
                husk_config_free(c);
        }
}

static void test_default_path_missing_gives_defaults(void **state) {
        husk_config_t *c = NULL;
        char *error = NULL;

        require(access(HUSK_DEFAULT_CONFIG, F_OK) < 0 && errno == ENOENT,
                "needs no " HUSK_DEFAULT_CONFIG " on this machine");
        assert_int_equal(husk_config_load(HUSK_DEFAULT_CONFIG, &c, &error), 0);
        assert_null(error);
        assert_defaults(c);
        husk_config_free(c);
}

static void test_derived_paths(void **state) {
        husk_config_t *c = load_ok(*state, "state_dir: /tmp/stack1/state\n"
                                           "runtime_dir: /tmp/stack1/run\n");

        /* A test stack that sets only the two dirs is self-contained. */
        assert_string_equal(c->bus[HUSK_DAEMON_APISERVER].events, "ipc:///tmp/stack1/run/apiserver.events");
        assert_string_equal(c->bus[HUSK_DAEMON_APISERVER].requests, "ipc:///tmp/stack1/run/apiserver.requests");
        assert_string_equal(c->bus[HUSK_DAEMON_SCHEDULER].events, "ipc:///tmp/stack1/run/scheduler.events");
        assert_string_equal(c->bus[HUSK_DAEMON_SCHEDULER].requests, "ipc:///tmp/stack1/run/scheduler.requests");
        assert_string_equal(c->bus[HUSK_DAEMON_VMM_DRIVER].events, "ipc:///tmp/stack1/run/vmm-driver.events");
        assert_string_equal(c->bus[HUSK_DAEMON_VMM_DRIVER].requests, "ipc:///tmp/stack1/run/vmm-driver.requests");
        assert_string_equal(c->apiserver.database, "/tmp/stack1/state/husk.db");
        assert_string_equal(c->apiserver.secrets_key_file, "/tmp/stack1/state/secrets.key");
        assert_string_equal(c->vmm_driver.instances_dir, "/tmp/stack1/state/instances");
        assert_string_equal(c->cloud_hypervisor.socket_dir, "/tmp/stack1/run/cloud-hypervisor");
        husk_config_free(c);

        /* An explicit value wins over the derived one, whatever the order in the file. */
        c = load_ok(*state, "bus:\n"
                            "  scheduler:\n"
                            "    requests: tcp://127.0.0.1:7100\n"
                            "apiserver:\n"
                            "  database: /srv/db/husk.db\n"
                            "runtime_dir: /tmp/stack2/run\n"
                            "state_dir: /tmp/stack2/state\n");
        assert_string_equal(c->bus[HUSK_DAEMON_SCHEDULER].requests, "tcp://127.0.0.1:7100");
        assert_string_equal(c->bus[HUSK_DAEMON_SCHEDULER].events, "ipc:///tmp/stack2/run/scheduler.events");
        assert_string_equal(c->apiserver.database, "/srv/db/husk.db");
        assert_string_equal(c->vmm_driver.instances_dir, "/tmp/stack2/state/instances");
        husk_config_free(c);
}

static void test_every_key(void **state) {
        husk_config_t *c = load_ok(*state, "state_dir: /srv/husk/state\n"
                                           "runtime_dir: /srv/husk/run\n"
                                           "log_level: debug\n"
                                           "bus:\n"
                                           "  apiserver:\n"
                                           "    events: tcp://127.0.0.1:7001\n"
                                           "    requests: tcp://127.0.0.1:7002\n"
                                           "  scheduler:\n"
                                           "    events: ipc:///srv/s.events\n"
                                           "    requests: ipc:///srv/s.requests\n"
                                           "  vmm-driver:\n"
                                           "    events: ipc:///srv/v.events\n"
                                           "    requests: ipc:///srv/v.requests\n"
                                           "apiserver:\n"
                                           "  listen: 0.0.0.0:8080\n"
                                           "  database: /srv/db/husk.sqlite\n"
                                           "scheduler:\n"
                                           "  resync_interval: 2m\n"
                                           "  request_timeout: 750ms\n"
                                           "vmm_driver:\n"
                                           "  instances_dir: /srv/instances\n"
                                           "  stop_timeout: 1h\n"
                                           "  default_cpus: 2\n"
                                           "  default_memory_mib: 1024\n"
                                           "kit:\n"
                                           "  kernel: /opt/kit/vmlinux\n"
                                           "  initrd: /opt/kit/initrd.gz\n"
                                           "runtime:\n"
                                           "  qemu:\n"
                                           "    enabled: false\n"
                                           "    binary_path: /usr/bin/qemu-system-x86_64\n"
                                           "    accel: tcg\n"
                                           "    tcg_translation_cache: 64Mi\n"
                                           "    max_console_log_bytes: 1Mi\n"
                                           "    max_console_log_backups: 0\n"
                                           "  cloud_hypervisor:\n"
                                           "    enabled: yes\n"
                                           "    binary_path: /opt/ch/cloud-hypervisor\n"
                                           "    firmware_path: /opt/ch/hypervisor-fw\n"
                                           "    socket_dir: /srv/ch-sockets\n"
                                           "    seccomp: log\n"
                                           "    max_console_log_bytes: 0\n"
                                           "    max_console_log_backups: 7\n");

        assert_string_equal(c->state_dir, "/srv/husk/state");
        assert_string_equal(c->runtime_dir, "/srv/husk/run");
        assert_int_equal(c->log_level, LOG_DEBUG);
        assert_string_equal(c->bus[HUSK_DAEMON_APISERVER].events, "tcp://127.0.0.1:7001");
        assert_string_equal(c->bus[HUSK_DAEMON_APISERVER].requests, "tcp://127.0.0.1:7002");
        assert_string_equal(c->bus[HUSK_DAEMON_SCHEDULER].events, "ipc:///srv/s.events");
        assert_string_equal(c->bus[HUSK_DAEMON_SCHEDULER].requests, "ipc:///srv/s.requests");
        assert_string_equal(c->bus[HUSK_DAEMON_VMM_DRIVER].events, "ipc:///srv/v.events");
        assert_string_equal(c->bus[HUSK_DAEMON_VMM_DRIVER].requests, "ipc:///srv/v.requests");
        assert_string_equal(c->apiserver.listen, "0.0.0.0:8080");
        assert_string_equal(c->apiserver.database, "/srv/db/husk.sqlite");
        assert_int_equal(c->scheduler.resync_interval_ms, 120000);
        assert_int_equal(c->scheduler.request_timeout_ms, 750);
        assert_string_equal(c->vmm_driver.instances_dir, "/srv/instances");
        assert_int_equal(c->vmm_driver.stop_timeout_ms, 3600000);
        assert_int_equal(c->vmm_driver.default_cpus, 2);
        assert_int_equal(c->vmm_driver.default_memory_mib, 1024);
        assert_string_equal(c->kit.kernel, "/opt/kit/vmlinux");
        assert_string_equal(c->kit.initrd, "/opt/kit/initrd.gz");

        assert_false(c->qemu.enabled);
        assert_string_equal(c->qemu.binary_path, "/usr/bin/qemu-system-x86_64");
        assert_string_equal(c->qemu.accel, "tcg");
        assert_int_equal(c->qemu.tcg_translation_cache, 64 * 1024 * 1024);
        assert_int_equal(c->qemu.max_console_log_bytes, 1048576);
        assert_int_equal(c->qemu.max_console_log_backups, 0);

        assert_true(c->cloud_hypervisor.enabled);
        assert_string_equal(c->cloud_hypervisor.binary_path, "/opt/ch/cloud-hypervisor");
        assert_string_equal(c->cloud_hypervisor.firmware_path, "/opt/ch/hypervisor-fw");
        assert_string_equal(c->cloud_hypervisor.socket_dir, "/srv/ch-sockets");
        assert_string_equal(c->cloud_hypervisor.seccomp, "log");
        assert_int_equal(c->cloud_hypervisor.max_console_log_bytes, 0);
        assert_int_equal(c->cloud_hypervisor.max_console_log_backups, 7);
        husk_config_free(c);
}

static void test_value_spellings(void **state) {
        static const struct {
                const char *v;
                bool want;
        } bools[] = {
                { "true", true },   { "yes", true }, { "on", true },   { "1", true },
                { "false", false }, { "no", false }, { "off", false }, { "0", false },
        };
        static const char *const levels[] = { "error", "warning", "notice", "info", "debug" };
        static const int level_values[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

        for (size_t i = 0; i < ELEMENTSOF(bools); i++) {
                char yaml[128];
                husk_config_t *c;

                snprintf(yaml, sizeof(yaml), "runtime:\n  qemu:\n    enabled: %s\n", bools[i].v);
                c = load_ok(*state, yaml);
                if (c->qemu.enabled != bools[i].want)
                        fail_msg("enabled: %s parsed as %d", bools[i].v, c->qemu.enabled);
                husk_config_free(c);
        }
        for (size_t i = 0; i < ELEMENTSOF(levels); i++) {
                char yaml[64];
                husk_config_t *c;

                snprintf(yaml, sizeof(yaml), "log_level: %s\n", levels[i]);
                c = load_ok(*state, yaml);
                assert_int_equal(c->log_level, level_values[i]);
                husk_config_free(c);
        }
}

static void test_config_path(void **state) {
        unsetenv("HUSK_CONFIG");
        assert_string_equal(husk_config_path(NULL), HUSK_DEFAULT_CONFIG);
        assert_string_equal(husk_config_path("/x/cmdline.yaml"), "/x/cmdline.yaml");
        setenv("HUSK_CONFIG", "/x/env.yaml", 1);
        assert_string_equal(husk_config_path(NULL), "/x/env.yaml");
        assert_string_equal(husk_config_path("/x/cmdline.yaml"), "/x/cmdline.yaml");
        setenv("HUSK_CONFIG", "", 1);
        assert_string_equal(husk_config_path(NULL), HUSK_DEFAULT_CONFIG);
        unsetenv("HUSK_CONFIG");
}

static void test_daemon_names(void **state) {
        assert_string_equal(husk_daemon_name(HUSK_DAEMON_APISERVER), "apiserver");
        assert_string_equal(husk_daemon_name(HUSK_DAEMON_SCHEDULER), "scheduler");
        assert_string_equal(husk_daemon_name(HUSK_DAEMON_VMM_DRIVER), "vmm-driver");
        assert_null(husk_daemon_name(_HUSK_DAEMON_MAX));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_error_unknown_top_level_key),
                T(test_error_unknown_nested_key),
                T(test_error_enum),
                T(test_error_duration),
                T(test_error_size),
                T(test_error_bool),
                T(test_error_u32),
                T(test_error_shape),
                T(test_error_empty_value),
                T(test_error_yaml_syntax),
                T(test_error_first_wins),
                T(test_missing_explicit_file),
                cmocka_unit_test(test_new_default),
                T(test_empty_file_gives_defaults),
                cmocka_unit_test(test_default_path_missing_gives_defaults),
                T(test_derived_paths),
                T(test_every_key),
                T(test_value_spellings),
                cmocka_unit_test(test_config_path),
                cmocka_unit_test(test_daemon_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
