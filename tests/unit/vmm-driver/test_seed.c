/* test_seed.c: the NoCloud seed: tricky environment values read back byte for byte by sh and by
 * the YAML cloud-init parses, values neither reader carries refused with the key named, and the
 * vfat volume (label, mode, files) as mtools reads it back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/run.h"
#include "lib/util.h"
#include "services/vmm-driver/vmm_seed.h"
#include "tests/unit/require.h"

#define ID "0123456789ab"

/* Values that break naive quoting, each with a key. */
static const char *const tricky[][2] = {
        { "SPACES", "hello   world " },
        { "QUOTES", "it's \"quoted\" 'twice'" },
        { "DOLLAR", "$HOME ${PATH} $(id) $$ $" },
        { "BACKSLASH", "a\\b\\\\c\\ \\n \\$ \\\" end\\" },
        { "BACKTICK", "`id` and \\`" },
        { "NEWLINES", "line one\nline two\n\nlast\n" },
        { "TAB", "a\tb" },
        { "UNICODE", "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 \xe4\xb8\xad" },
        { "EMPTY", "" },
        { "HASH", "#not a comment ; nor this" },
        { "EQUALS", "a=b=c" },
        { "_lower_9", "x" },
};

static char **tricky_env(void) {
        char **env = calloc(ELEMENTSOF(tricky) + 1, sizeof(char *));

        assert_non_null(env);
        for (size_t i = 0; i < ELEMENTSOF(tricky); i++)
                assert_true(asprintf(&env[i], "%s=%s", tricky[i][0], tricky[i][1]) > 0);
        return env;
}

static void strv_freep(char ***p) {
        for (size_t i = 0; *p && (*p)[i]; i++)
                free((*p)[i]);
        free(*p);
}

static char *make_dir(void) {
        char *dir = strdup("/tmp/husk-test-seed-XXXXXX");

        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        return dir;
}

static void write_text(const char *path, const char *text) {
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
}

/* What /bin/sh makes of the env file: each variable printed by printf %s into its own file. */
static void test_sh_reads_every_value_back(void **state) {
        _cleanup_(strv_freep) char **env = tricky_env();
        _cleanup_(vmm_seed_files_clear) vmm_seed_files_t f = {};
        _cleanup_free_ char *dir = make_dir(), *error = NULL;
        vmm_seed_spec_t spec = { .instance_id = ID, .environment = env };
        char envpath[256], profpath[256];

        assert_int_equal(vmm_seed_render(&spec, &f, &error), 0);
        snprintf(envpath, sizeof(envpath), "%s/env", dir);
        snprintf(profpath, sizeof(profpath), "%s/profile", dir);
        write_text(envpath, f.env);
        write_text(profpath, f.profile);
        for (int which = 0; which < 2; which++) {
                for (size_t i = 0; i < ELEMENTSOF(tricky); i++) {
                        _cleanup_free_ char *script = NULL, *out = NULL, *got = NULL;
                        char outpath[256];
                        size_t n;

                        snprintf(outpath, sizeof(outpath), "%s/out", dir);
                        /* The profile exports: a child sees it. The env file only sets. */
                        assert_true(asprintf(&script,
                                             which == 0 ? ". '%s' && printf %%s \"$%s\" > '%s'"
                                                        : ". '%s' && sh -c 'printf %%s \"$%s\"' > '%s'",
                                             which == 0 ? envpath : profpath, tricky[i][0], outpath) > 0);
                        {
                                char *const argv[] = { "/bin/sh", "-c", script, NULL };

                                assert_int_equal(run_tool(argv, NULL, &out), 0);
                        }
                        assert_int_equal(read_file(outpath, 1 << 20, &got, &n), 0);
                        if (n != strlen(tricky[i][1]) || memcmp(got, tricky[i][1], n) != 0)
                                fail_msg("%s via %s: got [%s], want [%s]", tricky[i][0], which == 0 ? "env" : "profile",
                                         got, tricky[i][1]);
                }
        }
        assert_int_equal(rm_rf(dir), 0);
}

/* The format the guest's systemd reads: KEY="..." with only \ " $ ` escaped, one line per key
 * unless the value holds a newline. Checked against the text itself: systemd's parser is not on
 * this host to ask (the image boot test asks the guest's). */
static void test_env_file_format(void **state) {
        char *env[] = { "A=x\"y\\z$w`v", "B=two\nlines", "C=\\n", NULL };
        _cleanup_(vmm_seed_files_clear) vmm_seed_files_t f = {};
        vmm_seed_spec_t spec = { .instance_id = ID, .environment = env };

        assert_int_equal(vmm_seed_render(&spec, &f, NULL), 0);
        assert_non_null(strstr(f.env, "\nA=\"x\\\"y\\\\z\\$w\\`v\"\n"));
        assert_non_null(strstr(f.env, "\nB=\"two\nlines\"\n"));
        assert_non_null(strstr(f.env, "\nC=\"\\\\n\"\n"));
        assert_non_null(strstr(f.profile, "\nexport A=\"x\\\"y\\\\z\\$w\\`v\"\n"));
}

static void expect_refused(const char *entry, const char *needle) {
        char *env[] = { (char *)entry, NULL };
        _cleanup_(vmm_seed_files_clear) vmm_seed_files_t f = {};
        _cleanup_free_ char *error = NULL;
        vmm_seed_spec_t spec = { .instance_id = ID, .environment = env };

        assert_int_equal(vmm_seed_render(&spec, &f, &error), -EINVAL);
        assert_non_null(error);
        if (!strstr(error, needle))
                fail_msg("for %s: message [%s] lacks [%s]", entry, error, needle);
        assert_null(f.user_data);
}

/* What systemd would drop silently ("Ignoring invalid environment assignment") is refused here,
 * the key named: a control character, bytes that are not UTF-8, a bad name. */
static void test_refuses_what_systemd_drops(void **state) {
        expect_refused("CR=a\rb", "environment CR: the value holds control character 0x0d");
        expect_refused("BEL=\a", "environment BEL: the value holds control character 0x07");
        expect_refused("DEL=\x7f", "environment DEL: the value holds control character 0x7f");
        expect_refused("LATIN1=caf\xe9", "environment LATIN1: the value is not valid UTF-8");
        expect_refused("OVERLONG=\xc0\xaf", "environment OVERLONG: the value is not valid UTF-8");
        expect_refused("SURROGATE=\xed\xa0\x80", "environment SURROGATE: the value is not valid UTF-8");
        expect_refused("NONCHAR=\xef\xbf\xbe", "environment NONCHAR: the value is not valid UTF-8");
        expect_refused("CUT=\xe2\x98", "environment CUT: the value is not valid UTF-8");
        expect_refused("1ABC=x", "environment 1ABC: not a valid variable name");
        expect_refused("A-B=x", "environment A-B: not a valid variable name");
        expect_refused("=x", "environment : not a valid variable name");
        expect_refused("NOEQUALS", "environment NOEQUALS: no '='");
        expect_refused("BAD\x01NAME=x", "environment BAD?NAME: not a valid variable name");
}

static void test_refuses_bad_fields(void **state) {
        _cleanup_(vmm_seed_files_clear) vmm_seed_files_t f = {};
        _cleanup_free_ char *error = NULL;
        vmm_seed_spec_t spec = { .instance_id = ID, .address = "10.0.0.300", .prefix = 30 };

        assert_int_equal(vmm_seed_render(&spec, &f, &error), -EINVAL);
        assert_non_null(strstr(error, "10.0.0.300/30"));
        free(error), error = NULL;
        spec = (vmm_seed_spec_t){ .instance_id = ID, .hostname = "bad host\n" };
        assert_int_equal(vmm_seed_render(&spec, &f, &error), -EINVAL);
        assert_non_null(strstr(error, "not a valid host name"));
        free(error), error = NULL;
        spec = (vmm_seed_spec_t){ .instance_id = ID, .address = "10.0.0.2", .prefix = 30, .gateway = "x" };
        assert_int_equal(vmm_seed_render(&spec, &f, &error), -EINVAL);
        assert_non_null(strstr(error, "gateway x"));
}

static bool have_tools(void) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        return run_find_tool("mkfs.fat", &a) == 0 && run_find_tool("mcopy", &b) == 0 &&
               run_find_tool("mtype", &c) == 0 && access("/usr/bin/python3", X_OK) == 0;
}

/* A file of the volume, as mtools reads it back. */
static char *seed_file(const char *img, const char *name) {
        char *const env[] = { "PATH=" RUN_TOOL_PATH, "LC_ALL=C", "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null", NULL };
        char src[64];
        char *out = NULL;

        snprintf(src, sizeof(src), "::/%s", name);
        {
                char *const argv[] = { "mtype", "-i", (char *)img, src, NULL };

                if (run_tool(argv, env, &out) < 0)
                        fail_msg("mtype %s: %s", name, out ? out : "?");
        }
        return out;
}

/* The YAML as cloud-init parses it (PyYAML's safe_load), write_files decoded: the bytes of one
 * written file, printed by Python into out. */
static void yaml_write_file(const char *user_data_path, const char *path, const char *out) {
        static const char prog[] = "import base64, sys, yaml\n"
                                   "d = yaml.safe_load(open(sys.argv[1], encoding='utf-8'))\n"
                                   "[f] = [f for f in d['write_files'] if f['path'] == sys.argv[2]]\n"
                                   "assert f['encoding'] == 'b64' and f['owner'] == 'root:root', f\n"
                                   "open(sys.argv[3], 'wb').write(base64.b64decode(f['content']))\n"
                                   "print(f['permissions'])\n";
        _cleanup_free_ char *output = NULL;
        char *const argv[] = { "/usr/bin/python3", "-c",        (char *)prog, (char *)user_data_path,
                               (char *)path,       (char *)out, NULL };

        if (run_tool(argv, NULL, &output) < 0)
                fail_msg("python3 could not read %s from user-data: %s", path, output ? output : "?");
}

static void test_seed_volume(void **state) {
        _cleanup_(strv_freep) char **env = tricky_env();
        _cleanup_(vmm_seed_files_clear) vmm_seed_files_t f = {};
        _cleanup_free_ char *dir = make_dir(), *error = NULL, *path = NULL, *md = NULL, *ud = NULL, *nc = NULL,
                            *label = NULL, *got = NULL;
        char *dns[] = { "10.0.0.1", "2001:db8::53", NULL };
        vmm_seed_spec_t spec = { .instance_id = ID,
                                 .environment = env,
                                 .address = "10.1.2.6",
                                 .prefix = 30,
                                 .gateway = "10.1.2.5",
                                 .dns = dns };
        char udpath[256], outpath[256], want[512];
        struct stat st;
        size_t n;

        require(have_tools(), "needs mkfs.fat (dosfstools), mcopy and mtype (mtools), python3-yaml");
        if (vmm_seed_write(dir, &spec, &path, &error) < 0)
                fail_msg("vmm_seed_write: %s", error);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_non_null(strstr(path, "/" VMM_SEED_FILE));
        {
                char *const argv[] = { "fatlabel", path, NULL };

                assert_int_equal(run_tool(argv, NULL, &label), 0);
                assert_string_equal(label, VMM_SEED_LABEL);
        }
        assert_int_equal(vmm_seed_render(&spec, &f, NULL), 0);
        md = seed_file(path, "meta-data");
        assert_string_equal(md, "instance-id: \"" ID "\"\nlocal-hostname: \"" ID "\"");
        nc = seed_file(path, "network-config");
        /* The glob as the id too: cloud-init's networkd renderer writes Name=<id>. */
        assert_non_null(strstr(nc, "ethernets:\n  \"e*\":\n    match:\n      name: \"e*\"\n"));
        assert_non_null(strstr(nc, "- \"10.1.2.6/30\""));
        assert_non_null(strstr(nc, "via: \"10.1.2.5\""));
        assert_non_null(strstr(nc, "- \"2001:db8::53\""));
        ud = seed_file(path, "user-data");
        assert_true(strncmp(ud, "#cloud-config\n", 14) == 0);
        assert_non_null(strstr(ud, "[ln, -sfn, /etc/husk/env, /etc/ring/env]"));

        /* The env file through YAML and base64, as cloud-init gets it: byte for byte. */
        snprintf(udpath, sizeof(udpath), "%s/user-data", dir);
        write_text(udpath, f.user_data);
        snprintf(outpath, sizeof(outpath), "%s/decoded", dir);
        yaml_write_file(udpath, "/etc/husk/env", outpath);
        assert_int_equal(read_file(outpath, 1 << 20, &got, &n), 0);
        assert_int_equal(n, strlen(f.env));
        assert_memory_equal(got, f.env, n);
        free(got), got = NULL;
        yaml_write_file(udpath, "/etc/systemd/system/service.d/husk-env.conf", outpath);
        assert_int_equal(read_file(outpath, 1 << 20, &got, &n), 0);
        assert_non_null(strstr(got, "[Service]\nEnvironmentFile=-/etc/husk/env\n"));
        free(got), got = NULL;
        yaml_write_file(udpath, "/etc/profile.d/husk-env.sh", outpath);
        assert_int_equal(read_file(outpath, 1 << 20, &got, &n), 0);
        assert_memory_equal(got, f.profile, n);
        snprintf(want, sizeof(want), "%s", "export SPACES=\"hello   world \"\n");
        assert_non_null(strstr(got, want));

        /* A second write replaces the first; remove leaves nothing behind. */
        free(path), path = NULL;
        assert_int_equal(vmm_seed_write(dir, &spec, &path, NULL), 0);
        vmm_seed_remove(dir);
        assert_int_equal(access(path, F_OK), -1);
        unlink(udpath);
        unlink(outpath);
        assert_int_equal(rmdir(dir), 0);
}

/* spec's user-data, rendered and written to a file, passes prog (python3 -c prog FILE). */
static void check_user_data(const vmm_seed_spec_t *spec, const char *prog) {
        _cleanup_(vmm_seed_files_clear) vmm_seed_files_t f = {};
        _cleanup_free_ char *dir = make_dir(), *output = NULL;
        char udpath[256];

        require(have_tools(), "needs mkfs.fat (dosfstools), mcopy and mtype (mtools), python3-yaml");
        assert_int_equal(vmm_seed_render(spec, &f, NULL), 0);
        snprintf(udpath, sizeof(udpath), "%s/user-data", dir);
        write_text(udpath, f.user_data);
        {
                char *const argv[] = { "/usr/bin/python3", "-c", (char *)prog, udpath, NULL };

                if (run_tool(argv, NULL, &output) < 0)
                        fail_msg("user-data: %s\n%s", output ? output : "?", f.user_data);
        }
        unlink(udpath);
        assert_int_equal(rmdir(dir), 0);
}

/* Volumes: Ring's mounts: entries, and the bootcmd that mounts them where cloud-init's mounts
 * module skips a virtio-fs tag; YAML as cloud-init parses it. A destination fstab or the shell
 * line cannot carry is refused, naming the volume. */
static void test_mounts(void **state) {
        static const char prog[] =
                "import sys, yaml\n"
                "d = yaml.safe_load(open(sys.argv[1], encoding='utf-8'))\n"
                "assert d['mounts'] == [['bind-0', '/data', 'virtiofs', 'rw,nofail', '0', '0'],\n"
                "                       ['vol-1', '/srv/ro', 'virtiofs', 'ro,nofail', '0', '0']], d\n"
                "sh = [c[2] for c in d['bootcmd'] if c[0] == 'sh' and 'mount' in c[2]]\n"
                "assert len(sh) == 3, sh\n"
                "assert 'mount -t virtiofs -o ro vol-1 ' in sh[1], sh\n"
                "assert 'mount --bind -o ro /run/husk-volumes/sec-2/pw ' in sh[2], sh\n";
        vmm_seed_mount_t mounts[] = {
                { .tag = "bind-0", .destination = "/data" },
                { .tag = "vol-1", .destination = "/srv/ro", .readonly = true },
                { .tag = "sec-2", .destination = "/run/secrets/pw", .readonly = true, .file = "pw" }
        };
        vmm_seed_spec_t spec = { .instance_id = ID, .mounts = mounts, .n_mounts = ELEMENTSOF(mounts) };
        _cleanup_(vmm_seed_files_clear) vmm_seed_files_t f = {};
        _cleanup_free_ char *error = NULL;

        check_user_data(&spec, prog);
        mounts[1].destination = "/srv/my data";
        assert_int_equal(vmm_seed_render(&spec, &f, &error), -EINVAL);
        assert_non_null(strstr(error, "volumes[1].destination"));
}

/* The environment's drop-in: the reload that makes a new one count costs seconds of a TCG boot.
 * bootcmd's and runcmd's lines run here as cloud-init runs them (sh -c), with their paths moved
 * into a scratch directory and systemctl standing in: a first boot without the drop-in reloads,
 * a boot with the same one does not, a boot with another one does. */
static void test_dropin_reload_only_when_it_changed(void **state) {
        static const char prog[] =
                "import base64, os, shutil, subprocess, sys, tempfile, yaml\n"
                "d = yaml.safe_load(open(sys.argv[1], encoding='utf-8'))\n"
                "[w] = [f for f in d['write_files'] if f['path'].endswith('/husk-env.conf')]\n"
                "written = base64.b64decode(w['content']).decode()\n"
                "boot = [c[2] for c in d['bootcmd'] if c[0] == 'sh' and w['path'] in c[2]]\n"
                "run = [c[2] for c in d['runcmd'] if c[0] == 'sh']\n"
                "assert len(boot) == 1 and len(run) == 1, (boot, run)\n"
                "assert ['systemctl', 'daemon-reload'] not in d['runcmd'], d['runcmd']\n"
                "def reloads(before):\n"
                "    t = tempfile.mkdtemp()\n"
                "    try:\n"
                "        os.makedirs(t + '/run')\n"
                "        dropin = t + '/husk-env.conf'\n"
                "        moved = lambda c: c.replace(w['path'], dropin).replace(' /run/', ' ' + t + '/run/')\n"
                "        assert moved(boot[0]).count(t) == 2 and moved(run[0]).count(t) == 2, (boot, run)\n"
                "        if before is not None:\n"
                "            open(dropin, 'w').write(before)\n"
                "        subprocess.run(['sh', '-c', moved(boot[0])], check=True)\n"
                "        open(dropin, 'w').write(written)\n"
                "        with open(t + '/systemctl', 'w') as f:\n"
                "            f.write('#!/bin/sh\\necho \"$@\" >> ' + t + '/calls\\n')\n"
                "        os.chmod(t + '/systemctl', 0o755)\n"
                "        env = dict(os.environ, PATH=t + ':' + os.environ['PATH'])\n"
                "        subprocess.run(['sh', '-c', moved(run[0])], check=True, env=env)\n"
                "        return open(t + '/calls').read() if os.path.exists(t + '/calls') else ''\n"
                "    finally:\n"
                "        shutil.rmtree(t)\n"
                "assert reloads(None) == 'daemon-reload\\n', 'a first boot without the drop-in reloads'\n"
                "assert reloads(written) == '', 'a boot with the same drop-in does not'\n"
                "assert reloads(written + '# older\\n') == 'daemon-reload\\n', 'another drop-in reloads'\n";
        vmm_seed_spec_t spec = { .instance_id = ID };

        check_user_data(&spec, prog);
}

/* Without an address there is no network-config: cloud-init keeps the image's own. */
static void test_no_network_config_without_address(void **state) {
        _cleanup_free_ char *dir = make_dir(), *path = NULL, *out = NULL;
        vmm_seed_spec_t spec = { .instance_id = ID };
        char *const env[] = { "PATH=" RUN_TOOL_PATH, "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null", NULL };

        require(have_tools(), "needs dosfstools and mtools");
        assert_int_equal(vmm_seed_write(dir, &spec, &path, NULL), 0);
        {
                char *const argv[] = { "mdir", "-b", "-i", path, "::/", NULL };

                assert_int_equal(run_tool(argv, env, &out), 0);
        }
        assert_non_null(strstr(out, "meta-data"));
        assert_non_null(strstr(out, "user-data"));
        assert_null(strstr(out, "network-config"));
        vmm_seed_remove(dir);
        assert_int_equal(rmdir(dir), 0);
}

/* test_seed write DIR INSTANCE_ID [--address IP/PREFIX] [--gateway IP] [--dns IP]... [KEY=value]...:
 * vmm_seed_write as a command, the image boot test's seed builder (tests/integration/
 * test_image_boot.py): the seed it boots is the one vmm-driver will make. Prints the path. */
static int seed_command(int argc, char **argv) {
        vmm_seed_spec_t spec = {};
        _cleanup_free_ char **env = calloc((size_t)argc + 1, sizeof(char *)),
                            **dns = calloc((size_t)argc + 1, sizeof(char *));
        _cleanup_free_ char *path = NULL, *error = NULL;
        size_t n_env = 0, n_dns = 0;

        if (argc < 4 || !env || !dns) {
                fprintf(stderr,
                        "usage: %s write DIR INSTANCE_ID [--address IP/PREFIX] [--gateway IP] [--dns IP]... "
                        "[KEY=value]...\n",
                        argv[0]);
                return 2;
        }
        spec.instance_id = argv[3];
        for (int i = 4; i < argc; i++) {
                if (streq(argv[i], "--address") && i + 1 < argc) {
                        char *slash = strchr(argv[++i], '/');
                        uint64_t prefix;

                        if (!slash || parse_u64(slash + 1, &prefix) < 0 || prefix > 32) {
                                fprintf(stderr, "--address wants IP/PREFIX\n");
                                return 2;
                        }
                        *slash = '\0';
                        spec.address = argv[i];
                        spec.prefix = (unsigned)prefix;
                } else if (streq(argv[i], "--gateway") && i + 1 < argc)
                        spec.gateway = argv[++i];
                else if (streq(argv[i], "--dns") && i + 1 < argc)
                        dns[n_dns++] = argv[++i];
                else
                        env[n_env++] = argv[i];
        }
        spec.environment = env;
        spec.dns = n_dns ? dns : NULL;
        if (vmm_seed_write(argv[2], &spec, &path, &error) < 0) {
                fprintf(stderr, "%s\n", error ? error : "vmm_seed_write failed");
                return 1;
        }
        printf("%s\n", path);
        return 0;
}

int main(int argc, char **argv) {
        if (argc > 1 && streq(argv[1], "write"))
                return seed_command(argc, argv);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sh_reads_every_value_back),
                cmocka_unit_test(test_env_file_format),
                cmocka_unit_test(test_refuses_what_systemd_drops),
                cmocka_unit_test(test_refuses_bad_fields),
                cmocka_unit_test(test_seed_volume),
                cmocka_unit_test(test_mounts),
                cmocka_unit_test(test_dropin_reload_only_when_it_changed),
                cmocka_unit_test(test_no_network_config_without_address),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
