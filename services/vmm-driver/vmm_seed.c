/* vmm_seed.c: the cloud-init NoCloud seed (see vmm_seed.h for the files and the quoting). */
#include "services/vmm-driver/vmm_seed.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base64.h"
#include "lib/run.h"
#include "lib/util.h"

#define SEED_TMP VMM_SEED_FILE ".tmp"
#define SEED_DIR_TMP ".seed-files"
#define HOSTNAME_MAX 63
#define SEED_MIN_BYTES (1024u * 1024u)

/* The three files a Ring-style image reads, and the unit drop-in: constant text. */
static const char dropin[] = "# husk: every service gets the deployment's environment.\n"
                             "[Service]\n"
                             "EnvironmentFile=-/etc/husk/env\n";
/* systemd read its units before cloud-init writes the drop-in, so a new drop-in counts only
 * after a daemon-reload, which costs seconds of a boot under TCG. bootcmd (before write_files)
 * keeps the drop-in the guest booted with; the reload runs only when the one written differs:
 * at the first boot of an image without it. husk's own image ships it (build-image.sh). */
#define DROPIN_PATH "/etc/systemd/system/service.d/husk-env.conf"
#define DROPIN_AT_BOOT "/run/husk-env.conf.boot"

_printf_(3, 4) static int seed_fail(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                free(*ret_error);
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

static bool env_key_valid(const char *k, size_t n) {
        if (n == 0 || !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') ||
                      k[i] == '_'))
                        return false;
        return true;
}

/* One code point of UTF-8 at s, as systemd's utf8_is_valid takes it (shortest form, no
 * surrogates, no noncharacters, at most U+10FFFF). Its length, or 0 when invalid. */
static size_t utf8_char(const unsigned char *s, uint32_t *ret) {
        uint32_t c;
        size_t n;

        if (s[0] < 0x80) {
                *ret = s[0];
                return 1;
        }
        if ((s[0] & 0xe0) == 0xc0)
                n = 2, c = s[0] & 0x1f;
        else if ((s[0] & 0xf0) == 0xe0)
                n = 3, c = s[0] & 0x0f;
        else if ((s[0] & 0xf8) == 0xf0)
                n = 4, c = s[0] & 0x07;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
                        return 0;
                c = c << 6 | (s[i] & 0x3f);
        }
        if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
            (c >= 0xd800 && c <= 0xdfff) || (c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe)
                return 0;
        *ret = c;
        return n;
}

int vmm_seed_env_quote(const char *key, const char *value, char **ret, char **ret_error) {
        const unsigned char *p = (const unsigned char *)value;
        size_t len = strlen(value), n = 0;
        char *out, *o;

        for (size_t i = 0; i < len;) {
                uint32_t c;
                size_t k = utf8_char(p + i, &c);

                if (k == 0)
                        return seed_fail(ret_error, -EINVAL, "environment %s: the value is not valid UTF-8 (byte %zu)",
                                         key, i);
                if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
                        return seed_fail(ret_error, -EINVAL,
                                         "environment %s: the value holds control character 0x%02x (only tab and "
                                         "newline can reach the guest's services)",
                                         key, (unsigned)c);
                n += k + (c == '\\' || c == '"' || c == '$' || c == '`');
                i += k;
        }
        out = malloc(n + 3);
        if (!out)
                return -ENOMEM;
        o = out;
        *o++ = '"';
        for (size_t i = 0; i < len; i++) {
                if (p[i] == '\\' || p[i] == '"' || p[i] == '$' || p[i] == '`')
                        *o++ = '\\';
                *o++ = (char)p[i];
        }
        *o++ = '"';
        *o = '\0';
        *ret = out;
        return 0;
}

/* Key and value of "KEY=value" into the env file and the profile script. */
static int env_lines(char *const *env, FILE *envf, FILE *prof, char **ret_error) {
        for (size_t i = 0; env && env[i]; i++) {
                const char *eq = strchr(env[i], '=');
                _cleanup_free_ char *key = NULL, *quoted = NULL;
                int r;

                if (!eq || !env_key_valid(env[i], (size_t)(eq - env[i]))) {
                        char shown[65];
                        size_t n = eq ? (size_t)(eq - env[i]) : strlen(env[i]);

                        /* The name as the user wrote it, but only printable ASCII of it. */
                        n = n < sizeof(shown) - 1 ? n : sizeof(shown) - 1;
                        for (size_t k = 0; k < n; k++)
                                shown[k] = env[i][k] >= 0x20 && env[i][k] < 0x7f ? env[i][k] : '?';
                        shown[n] = '\0';
                        return seed_fail(ret_error, -EINVAL,
                                         eq ? "environment %s: not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
                                            : "environment %s: no '=' (want KEY=value)",
                                         shown);
                }
                key = strndup(env[i], (size_t)(eq - env[i]));
                if (!key)
                        return -ENOMEM;
                r = vmm_seed_env_quote(key, eq + 1, &quoted, ret_error);
                if (r < 0)
                        return r;
                fprintf(envf, "%s=%s\n", key, quoted);
                fprintf(prof, "export %s=%s\n", key, quoted);
        }
        return 0;
}

static bool hostname_valid(const char *h) {
        size_t n = strlen(h);

        if (n == 0 || n > HOSTNAME_MAX || h[0] == '-' || h[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') ||
                      h[i] == '-'))
                        return false;
        return true;
}

static bool ip_valid(const char *s, int family) {
        unsigned char buf[sizeof(struct in6_addr)];

        return s && inet_pton(family, s, buf) == 1;
}

/* One write_files entry with its content base64-encoded: YAML never sees the bytes. */
static int write_file_entry(FILE *f, const char *path, const char *mode, const char *content) {
        _cleanup_free_ char *b64 = base64_encode(content, strlen(content));

        if (!b64)
                return -ENOMEM;
        fprintf(f,
                "  - path: %s\n"
                "    owner: root:root\n"
                "    permissions: '%s'\n"
                "    encoding: b64\n"
                "    content: %s\n",
                path, mode, b64);
        return 0;
}

static int close_stream(FILE **f, char **buf) {
        int r = fclose(*f) == 0 ? 0 : -ENOMEM;

        *f = NULL;
        if (r < 0) {
                free(*buf);
                *buf = NULL;
        }
        return r;
}

/* The environment may hold secrets: wiped, not only freed. */
static void free_wiped(char *s) {
        if (s)
                explicit_bzero(s, strlen(s));
        free(s);
}

void vmm_seed_files_clear(vmm_seed_files_t *f) {
        free(f->meta_data);
        free_wiped(f->user_data);
        free(f->network_config);
        free_wiped(f->env);
        free_wiped(f->profile);
        memset(f, 0, sizeof(*f));
}

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

/* Characters a destination may hold in disk mode: fstab splits on blanks, and the bootcmd line
 * quotes with single quotes. */
static bool mount_path_valid(const char *p) {
        if (!p || p[0] != '/' || streq(p, "/"))
                return false;
        for (; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr("/._+-", *p)))
                        return false;
        return true;
}

static bool mount_word_valid(const char *w) {
        if (!w || !*w || strlen(w) > 255)
                return false;
        for (; *w; w++)
                if (!((*w >= 'a' && *w <= 'z') || (*w >= 'A' && *w <= 'Z') || (*w >= '0' && *w <= '9') ||
                      strchr("._+-", *w)))
                        return false;
        return true;
}

static int check_mounts(const vmm_seed_spec_t *spec, char **ret_error) {
        for (size_t k = 0; k < spec->n_mounts; k++) {
                const vmm_seed_mount_t *m = &spec->mounts[k];

                if (!mount_word_valid(m->tag))
                        return seed_fail(ret_error, -EINVAL, "volumes[%zu].tag: not a virtio-fs tag", k);
                if (!mount_path_valid(m->destination))
                        return seed_fail(ret_error, -EINVAL,
                                         "volumes[%zu].destination: %s cannot go into cloud-init's mounts: in disk "
                                         "mode: use letters, digits and / . _ + -",
                                         k, m->destination ?: "(none)");
                if (m->file && !mount_word_valid(m->file))
                        return seed_fail(ret_error, -EINVAL,
                                         "volumes[%zu]: file %s cannot be bound by cloud-init in disk mode", k,
                                         m->file);
        }
        return 0;
}

/* mounts: as Ring writes them, and bootcmd lines that mount what is not mounted yet (every
 * boot: a share is no block device that fstab's mount -a at boot would find before cloud-init
 * wrote it). */
static void write_mounts(FILE *ud, const vmm_seed_spec_t *spec) {
        bool any = false;

        for (size_t k = 0; k < spec->n_mounts; k++) {
                const vmm_seed_mount_t *m = &spec->mounts[k];

                if (m->file)
                        continue;
                if (!any)
                        fputs("mounts:\n", ud);
                any = true;
                fprintf(ud, "  - [\"%s\", \"%s\", virtiofs, \"%s,nofail\", \"0\", \"0\"]\n", m->tag, m->destination,
                        m->readonly ? "ro" : "rw");
        }
}

static void write_mount_bootcmd(FILE *ud, const vmm_seed_spec_t *spec) {
        for (size_t k = 0; k < spec->n_mounts; k++) {
                const vmm_seed_mount_t *m = &spec->mounts[k];
                const char *o = m->readonly ? "ro" : "rw";

                if (!m->file)
                        fprintf(ud,
                                "  - [sh, -c, \"mountpoint -q '%s' || { mkdir -p '%s' && mount -t virtiofs -o %s %s "
                                "'%s'; }\"]\n",
                                m->destination, m->destination, o, m->tag, m->destination);
                else
                        /* The destination is checked above: no blank or quote to guard in $(dirname). */
                        fprintf(ud,
                                "  - [sh, -c, \"mountpoint -q '%s' || { mkdir -p /run/husk-volumes/%s $(dirname '%s') "
                                "&& touch '%s' && mount -t virtiofs -o %s %s /run/husk-volumes/%s && mount --bind "
                                "%s/run/husk-volumes/%s/%s '%s'; }\"]\n",
                                m->destination, m->tag, m->destination, m->destination, o, m->tag, m->tag,
                                m->readonly ? "-o ro " : "", m->tag, m->file, m->destination);
        }
}

int vmm_seed_render(const vmm_seed_spec_t *spec, vmm_seed_files_t *ret, char **ret_error) {
        _cleanup_(fclosep) FILE *envf = NULL, *prof = NULL, *ud = NULL, *md = NULL, *nc = NULL;
        vmm_seed_files_t out = {};
        const char *hostname;
        size_t n_env = 0, n_prof = 0, n_ud = 0, n_md = 0, n_nc = 0;
        int r;

        if (ret_error)
                *ret_error = NULL;
        memset(ret, 0, sizeof(*ret));
        if (!spec->instance_id || !hostname_valid(spec->instance_id))
                return seed_fail(ret_error, -EINVAL, "seed: instance id %s is not a valid host name",
                                 spec->instance_id ? spec->instance_id : "(none)");
        hostname = spec->hostname ? spec->hostname : spec->instance_id;
        if (!hostname_valid(hostname))
                return seed_fail(ret_error, -EINVAL,
                                 "seed: %s is not a valid host name (letters, digits, "
                                 "'-', at most %d)",
                                 hostname, HOSTNAME_MAX);
        if (spec->address && (!ip_valid(spec->address, AF_INET) || spec->prefix < 1 || spec->prefix > 32))
                return seed_fail(ret_error, -EINVAL, "seed: address %s/%u is not an IPv4 address and prefix",
                                 spec->address, spec->prefix);
        if (spec->address && spec->gateway && !ip_valid(spec->gateway, AF_INET))
                return seed_fail(ret_error, -EINVAL, "seed: gateway %s is not an IPv4 address", spec->gateway);
        for (size_t i = 0; spec->address && spec->dns && spec->dns[i]; i++)
                if (!ip_valid(spec->dns[i], AF_INET) && !ip_valid(spec->dns[i], AF_INET6))
                        return seed_fail(ret_error, -EINVAL, "seed: name server %s is not an IP address", spec->dns[i]);

        r = check_mounts(spec, ret_error);
        if (r < 0)
                return r;

        envf = open_memstream(&out.env, &n_env);
        prof = open_memstream(&out.profile, &n_prof);
        if (!envf || !prof)
                goto oom;
        fputs("# husk: the deployment's environment (KEY=\"value\", sh and systemd read it alike).\n", envf);
        fputs("# husk: the deployment's environment for login shells.\n", prof);
        r = env_lines(spec->environment, envf, prof, ret_error);
        if (r >= 0)
                r = env_lines(spec->secret_environment, envf, prof, ret_error);
        if (r < 0)
                goto fail;
        if (close_stream(&envf, &out.env) < 0 || close_stream(&prof, &out.profile) < 0)
                goto oom;

        /* Instance ids and host names are checked above: plain scalars, quoted anyway. */
        md = open_memstream(&out.meta_data, &n_md);
        if (!md)
                goto oom;
        fprintf(md, "instance-id: \"%s\"\nlocal-hostname: \"%s\"\n", spec->instance_id, hostname);
        if (close_stream(&md, &out.meta_data) < 0)
                goto oom;

        ud = open_memstream(&out.user_data, &n_ud);
        if (!ud)
                goto oom;
        fprintf(ud, "#cloud-config\n# husk NoCloud seed of instance %s\nwrite_files:\n", spec->instance_id);
        if (write_file_entry(ud, "/etc/husk/env", "0600", out.env) < 0 ||
            write_file_entry(ud, "/etc/profile.d/husk-env.sh", "0600", out.profile) < 0 ||
            write_file_entry(ud, DROPIN_PATH, "0644", dropin) < 0)
                goto oom;
        /* Ring's path for a Ring user's image: bootcmd runs before write_files, and a symlink
         * to a file not yet written is fine. A reload makes a new drop-in count for every
         * service started or restarted from then on (DROPIN_AT_BOOT). */
        write_mounts(ud, spec);
        fputs("bootcmd:\n"
              "  - [mkdir, -p, /etc/ring]\n"
              "  - [ln, -sfn, /etc/husk/env, /etc/ring/env]\n"
              "  - [sh, -c, \"cp -p " DROPIN_PATH " " DROPIN_AT_BOOT " 2>/dev/null || true\"]\n",
              ud);
        write_mount_bootcmd(ud, spec);
        fputs("runcmd:\n"
              "  - [sh, -c, \"cmp -s " DROPIN_AT_BOOT " " DROPIN_PATH " || systemctl daemon-reload\"]\n",
              ud);
        if (close_stream(&ud, &out.user_data) < 0)
                goto oom;

        if (spec->address) {
                nc = open_memstream(&out.network_config, &n_nc);
                if (!nc)
                        goto oom;
                /* The first NIC by name: e* is eth0, ens3, enp0s3 alike, never lo. The glob is the
                 * entry's id as well as its match: cloud-init's networkd renderer (Debian's) ignores
                 * match: and writes [Match] Name=<id>, which networkd reads as a glob; netplan
                 * (Ubuntu's) uses the match. With an id like "husk0", networkd matched nothing. */
                fprintf(nc,
                        "version: 2\n"
                        "ethernets:\n"
                        "  \"e*\":\n"
                        "    match:\n"
                        "      name: \"e*\"\n"
                        "    dhcp4: false\n"
                        "    dhcp6: false\n"
                        "    addresses:\n"
                        "      - \"%s/%u\"\n",
                        spec->address, spec->prefix);
                if (spec->gateway)
                        fprintf(nc,
                                "    routes:\n"
                                "      - to: \"0.0.0.0/0\"\n"
                                "        via: \"%s\"\n",
                                spec->gateway);
                if (spec->dns && spec->dns[0]) {
                        fputs("    nameservers:\n      addresses:\n", nc);
                        for (size_t i = 0; spec->dns[i]; i++)
                                fprintf(nc, "        - \"%s\"\n", spec->dns[i]);
                }
                if (close_stream(&nc, &out.network_config) < 0)
                        goto oom;
        }
        if (n_ud + n_md + n_nc > VMM_SEED_CONTENT_MAX) {
                vmm_seed_files_clear(&out);
                return seed_fail(ret_error, -E2BIG,
                                 "seed: the environment is too large (%zu bytes of "
                                 "cloud-init data, at most %u)",
                                 n_ud + n_md + n_nc, VMM_SEED_CONTENT_MAX);
        }
        *ret = out;
        return 0;

oom:
        r = -ENOMEM;
fail:
        /* The streams own their buffers until closed: close them before freeing. */
        if (envf)
                fclose(envf), envf = NULL;
        if (prof)
                fclose(prof), prof = NULL;
        if (md)
                fclose(md), md = NULL;
        if (ud)
                fclose(ud), ud = NULL;
        if (nc)
                fclose(nc), nc = NULL;
        vmm_seed_files_clear(&out);
        return r;
}

static int write_plain(const char *dir, const char *name, const char *content) {
        char path[PATH_MAX];
        _cleanup_close_ int fd = -1;
        size_t n = strlen(content), done = 0;

        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        while (done < n) {
                ssize_t k = write(fd, content + done, n - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t)k;
        }
        return 0;
}

/* mkfs.fat or mcopy, with their output in the message when they fail. */
static int seed_tool(char *const argv[], char **ret_error) {
        static char *const env[] = { "PATH=" RUN_TOOL_PATH, "LC_ALL=C", "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null",
                                     NULL };
        _cleanup_free_ char *output = NULL;
        int r = run_tool(argv, env, &output);

        if (r == -ENOENT)
                return seed_fail(ret_error, r, "seed: %s not found (install %s)", argv[0],
                                 streq(argv[0], "mcopy") ? "mtools" : "dosfstools");
        if (r < 0)
                return seed_fail(ret_error, r, "seed: %s failed: %s", argv[0],
                                 output && *output ? output : strerror(-r));
        return 0;
}

static void remove_tmp(const char *dir) {
        static const char *const names[] = { "meta-data", "user-data", "network-config" };
        char path[PATH_MAX];

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if ((size_t)snprintf(path, sizeof(path), "%s/" SEED_DIR_TMP "/%s", dir, names[i]) < sizeof(path))
                        (void)unlink(path);
        if ((size_t)snprintf(path, sizeof(path), "%s/" SEED_DIR_TMP, dir) < sizeof(path))
                (void)rmdir(path);
        if ((size_t)snprintf(path, sizeof(path), "%s/" SEED_TMP, dir) < sizeof(path))
                (void)unlink(path);
}

int vmm_seed_write(const char *dir, const vmm_seed_spec_t *spec, char **ret_path, char **ret_error) {
        _cleanup_(vmm_seed_files_clear) vmm_seed_files_t files = {};
        _cleanup_free_ char *absdir = NULL;
        char tmpdir[PATH_MAX], img[PATH_MAX], final[PATH_MAX], volid[9] = "";
        const char *names[3] = { "meta-data", "user-data", "network-config" };
        _cleanup_close_ int fd = -1;
        uint64_t size;
        int r;

        if (ret_path)
                *ret_path = NULL;
        r = vmm_seed_render(spec, &files, ret_error);
        if (r < 0)
                return r;
        absdir = realpath(dir, NULL);
        if (!absdir)
                return seed_fail(ret_error, -errno, "seed: instance directory %s: %s", dir, strerror(errno));
        if ((size_t)snprintf(tmpdir, sizeof(tmpdir), "%s/" SEED_DIR_TMP, absdir) >= sizeof(tmpdir) ||
            (size_t)snprintf(img, sizeof(img), "%s/" SEED_TMP, absdir) >= sizeof(img) ||
            (size_t)snprintf(final, sizeof(final), "%s/" VMM_SEED_FILE, absdir) >= sizeof(final))
                return seed_fail(ret_error, -ENAMETOOLONG, "seed: instance directory %s: path too long", dir);

        /* What an earlier attempt cut short, then a private directory for the three files. */
        remove_tmp(absdir);
        if (mkdir(tmpdir, 0700) < 0)
                return seed_fail(ret_error, -errno, "seed: cannot create %s: %s", tmpdir, strerror(errno));
        r = write_plain(tmpdir, names[0], files.meta_data);
        if (r == 0)
                r = write_plain(tmpdir, names[1], files.user_data);
        if (r == 0 && files.network_config)
                r = write_plain(tmpdir, names[2], files.network_config);
        if (r < 0) {
                seed_fail(ret_error, r, "seed: cannot write into %s: %s", tmpdir, strerror(-r));
                goto fail;
        }

        /* The volume: created here with mode 0600 (mkfs.fat -C would use the umask), sized for
         * the files with room for FAT's overhead. */
        size = SEED_MIN_BYTES + 2 * ((uint64_t)strlen(files.meta_data) + strlen(files.user_data) +
                                     (files.network_config ? strlen(files.network_config) : 0));
        size = (size + 65535) & ~(uint64_t)65535;
        fd = open(img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
                r = seed_fail(ret_error, -errno, "seed: cannot create %s: %s", img, strerror(errno));
                goto fail;
        }
        fd = (close(fd), -1);
        /* A volume id from the instance id, so the same instance gets the same volume. */
        if (strlen(spec->instance_id) >= 8 && strspn(spec->instance_id, "0123456789abcdef") >= 8)
                memcpy(volid, spec->instance_id, 8);
        {
                char *const argv_id[] = { "mkfs.fat", "-n", VMM_SEED_LABEL, "-i", volid, img, NULL };
                char *const argv_noid[] = { "mkfs.fat", "-n", VMM_SEED_LABEL, img, NULL };

                r = seed_tool(volid[0] ? argv_id : argv_noid, ret_error);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char src[PATH_MAX], dst[64];

                if (i == 2 && !files.network_config)
                        continue;
                if ((size_t)snprintf(src, sizeof(src), "%s/%s", tmpdir, names[i]) >= sizeof(src)) {
                        r = seed_fail(ret_error, -ENAMETOOLONG, "seed: %s: path too long", tmpdir);
                        goto fail;
                }
                snprintf(dst, sizeof(dst), "::/%s", names[i]);
                {
                        char *const argv[] = { "mcopy", "-i", img, src, dst, NULL };

                        r = seed_tool(argv, ret_error);
                        if (r < 0)
                                goto fail;
                }
        }
        if (rename(img, final) < 0) {
                r = seed_fail(ret_error, -errno, "seed: cannot rename %s: %s", img, strerror(errno));
                goto fail;
        }
        remove_tmp(absdir);
        if (ret_path) {
                *ret_path = strdup(final);
                if (!*ret_path)
                        return -ENOMEM;
        }
        return 0;

fail:
        remove_tmp(absdir);
        return r;
}

void vmm_seed_remove(const char *dir) {
        char path[PATH_MAX];

        remove_tmp(dir);
        if ((size_t)snprintf(path, sizeof(path), "%s/" VMM_SEED_FILE, dir) < sizeof(path))
                (void)unlink(path);
}
