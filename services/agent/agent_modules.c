/* agent_modules.c: load kernel modules with their dependencies, as modprobe would. */
#include "services/agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The index files depmod writes for a few dozen modules are small; anything bigger is
 * not ours. */
#define INDEX_MAX (4u * 1024u * 1024u)
/* Softdeps can name modules that have softdeps; real chains are one or two deep. */
#define SOFTDEP_DEPTH_MAX 4

struct agent_modules {
        int dirfd;     /* /lib/modules/<release> */
        char *cmdline; /* module options come from here */
        char *dep;     /* modules.dep */
        char *softdep; /* modules.softdep, "" when absent */
        char *alias;   /* modules.alias, "" when absent */
        char *builtin; /* modules.builtin, "" when absent */
};

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

void module_name_from_path(const char *path, char *buf, size_t size) {
        const char *base = strrchr(path, '/');
        size_t n;

        base = base ? base + 1 : path;
        n = strcspn(base, ".");
        if (n >= size)
                n = size - 1;
        for (size_t i = 0; i < n; i++)
                buf[i] = base[i] == '-' ? '_' : base[i];
        buf[n] = '\0';
}

static void normalize(const char *name, char *buf, size_t size) {
        size_t n = strlen(name);

        if (n >= size)
                n = size - 1;
        for (size_t i = 0; i < n; i++)
                buf[i] = name[i] == '-' ? '_' : name[i];
        buf[n] = '\0';
}

/* Iterate over the lines of text: *line and *len, false at the end. */
static bool next_line(const char **p, const char **line, size_t *len) {
        const char *s = *p, *e;

        if (!*s)
                return false;
        e = strchrnul(s, '\n');
        *line = s;
        *len = (size_t)(e - s);
        *p = *e ? e + 1 : e;
        return true;
}

/* The next space-separated field of a line. */
static bool next_field(const char **p, const char *end, const char **f, size_t *len) {
        const char *s = *p;

        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        if (s >= end)
                return false;
        *f = s;
        while (s < end && *s != ' ' && *s != '\t')
                s++;
        *len = (size_t)(s - *f);
        *p = s;
        return true;
}

static bool path_is_module(const char *path, size_t len, const char *name) {
        char p[256], n[64];

        if (len >= sizeof(p))
                return false;
        memcpy(p, path, len);
        p[len] = '\0';
        module_name_from_path(p, n, sizeof(n));
        return streq(n, name);
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

int modules_dep_lookup(const char *dep_text, const char *name, char **ret_path, char ***ret_deps, size_t *ret_n) {
        const char *p = dep_text, *line;
        char want[64];
        size_t len;

        normalize(name, want, sizeof(want));
        while (next_line(&p, &line, &len)) {
                const char *colon = memchr(line, ':', len), *q, *end = line + len, *f;
                char **deps = NULL, *path;
                size_t n = 0, flen;

                if (!colon || !path_is_module(line, (size_t)(colon - line), want))
                        continue;
                path = strndup(line, (size_t)(colon - line));
                if (!path)
                        return -ENOMEM;
                q = colon + 1;
                while (next_field(&q, end, &f, &flen)) {
                        char **v = realloc(deps, (n + 1) * sizeof(char *));
                        if (!v || !(v[n] = strndup(f, flen))) {
                                strv_free(v ? v : deps, n);
                                free(path);
                                return -ENOMEM;
                        }
                        deps = v;
                        n++;
                }
                *ret_path = path;
                *ret_deps = deps;
                *ret_n = n;
                return 0;
        }
        return -ENOENT;
}

static bool is_builtin(const agent_modules_t *m, const char *name) {
        const char *p = m->builtin, *line;
        size_t len;

        while (next_line(&p, &line, &len))
                if (path_is_module(line, len, name))
                        return true;
        return false;
}

static bool is_loaded(const char *name) {
        char path[128];

        /* initstate exists for loadable modules only, once they are in the kernel. */
        snprintf(path, sizeof(path), "/sys/module/%s/initstate", name);
        return access(path, F_OK) == 0;
}

static int read_index(const char *dir, const char *file, bool required, char **ret) {
        char path[PATH_MAX];
        int r;

        snprintf(path, sizeof(path), "%s/%s", dir, file);
        r = read_file(path, INDEX_MAX, ret, NULL);
        if (r == -ENOENT && !required) {
                *ret = strdup("");
                return *ret ? 0 : -ENOMEM;
        }
        return r;
}

int agent_modules_open(const char *dir, const char *cmdline, agent_modules_t **ret) {
        agent_modules_t *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        m->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (m->dirfd < 0) {
                r = -errno;
                goto fail;
        }
        m->cmdline = strdup(cmdline ? cmdline : "");
        if (!m->cmdline) {
                r = -ENOMEM;
                goto fail;
        }
        r = read_index(dir, "modules.dep", true, &m->dep);
        if (r < 0)
                goto fail;
        r = read_index(dir, "modules.softdep", false, &m->softdep);
        if (r < 0)
                goto fail;
        r = read_index(dir, "modules.alias", false, &m->alias);
        if (r < 0)
                goto fail;
        r = read_index(dir, "modules.builtin", false, &m->builtin);
        if (r < 0)
                goto fail;
        *ret = m;
        return 0;
fail:
        agent_modules_free(m);
        return r;
}

agent_modules_t *agent_modules_free(agent_modules_t *m) {
        if (!m)
                return NULL;
        if (m->dirfd >= 0)
                close(m->dirfd);
        free(m->cmdline);
        free(m->dep);
        free(m->softdep);
        free(m->alias);
        free(m->builtin);
        free(m);
        return NULL;
}

static int insert(agent_modules_t *m, const char *relpath) {
        _cleanup_free_ char *opts = NULL;
        _cleanup_close_ int fd = -1;
        char name[64];
        int r;

        module_name_from_path(relpath, name, sizeof(name));
        if (is_loaded(name))
                return 0;
        r = cmdline_module_options(m->cmdline, name, &opts);
        if (r < 0)
                return r;
        fd = openat(m->dirfd, relpath, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return log_agent_debug_errno(errno, "Failed to open module %s: %m", relpath);
        if (syscall(SYS_finit_module, fd, opts, 0) < 0 && errno != EEXIST)
                return log_agent_debug_errno(errno, "Failed to load %s: %m", name);
        log_agent_debug("loaded %s%s%s", name, *opts ? " " : "", opts);
        return 0;
}

static int load(agent_modules_t *m, const char *name, unsigned depth);

/* Load every module one of whose aliases matches: a device's modalias against the
 * patterns ("virtio:d00000003v*"), or a name softdeps use ("crypto-crc32c", served by
 * several modules of which only some fit this CPU). */
static int load_alias(agent_modules_t *m, const char *alias, unsigned depth) {
        const char *p = m->alias, *line;
        size_t len;
        int r = -ENOENT;

        while (next_line(&p, &line, &len)) {
                const char *q = line, *end = line + len, *kw, *a, *mod;
                size_t kwlen, al, ml;
                char pattern[256], name[64];

                if (!next_field(&q, end, &kw, &kwlen) || kwlen != 5 || memcmp(kw, "alias", 5) != 0 ||
                    !next_field(&q, end, &a, &al) || al >= sizeof(pattern) || !next_field(&q, end, &mod, &ml) ||
                    ml >= sizeof(name))
                        continue;
                memcpy(pattern, a, al);
                pattern[al] = '\0';
                if (fnmatch(pattern, alias, 0) != 0)
                        continue;
                memcpy(name, mod, ml);
                name[ml] = '\0';
                if (load(m, name, depth) >= 0)
                        r = 0;
                else if (r == -ENOENT)
                        r = -EIO;
        }
        return r;
}

int agent_modules_load_alias(agent_modules_t *m, const char *modalias) { return load_alias(m, modalias, 0); }

int agent_modules_coldplug(agent_modules_t *m, const char *devices_dir) {
        _cleanup_(closedirp) DIR *d = opendir(devices_dir);
        struct dirent *de;
        int n = 0;

        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *alias = NULL;
                char path[PATH_MAX];

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s/modalias", devices_dir, de->d_name);
                if (read_file(path, 256, &alias, NULL) < 0)
                        continue;
                alias[strcspn(alias, "\n")] = '\0';
                if (load_alias(m, alias, 0) < 0)
                        log_agent_debug("no module for %s (%s)", de->d_name, alias);
                else
                        n++;
        }
        return n;
}

/* "softdep mod pre: a b post: c": load the pre (want_post false) or post modules. */
static void load_softdeps(agent_modules_t *m, const char *name, bool want_post, unsigned depth) {
        const char *p = m->softdep, *line;
        size_t len;

        if (depth >= SOFTDEP_DEPTH_MAX)
                return;
        while (next_line(&p, &line, &len)) {
                const char *q = line, *end = line + len, *f;
                size_t flen;
                bool post = false;

                if (!next_field(&q, end, &f, &flen) || flen != 7 || memcmp(f, "softdep", 7) != 0 ||
                    !next_field(&q, end, &f, &flen) || !path_is_module(f, flen, name))
                        continue;
                while (next_field(&q, end, &f, &flen)) {
                        char dep[64];

                        if (flen == 4 && memcmp(f, "pre:", 4) == 0) {
                                post = false;
                                continue;
                        }
                        if (flen == 5 && memcmp(f, "post:", 5) == 0) {
                                post = true;
                                continue;
                        }
                        if (post != want_post || flen >= sizeof(dep))
                                continue;
                        memcpy(dep, f, flen);
                        dep[flen] = '\0';
                        /* modprobe goes on when a softdep is missing: so do we. */
                        if (load(m, dep, depth + 1) < 0 && load_alias(m, dep, depth + 1) < 0)
                                log_agent_debug("softdep %s of %s not loaded, ignoring", dep, name);
                }
        }
}

static int load(agent_modules_t *m, const char *name, unsigned depth) {
        _cleanup_free_ char *path = NULL;
        char **deps = NULL;
        char want[64];
        size_t n = 0;
        int r;

        normalize(name, want, sizeof(want));
        if (is_builtin(m, want))
                return 0;
        r = modules_dep_lookup(m->dep, want, &path, &deps, &n);
        if (r < 0)
                return r;

        load_softdeps(m, want, false, depth);
        /* modules.dep lists the whole closure, the ones loaded last first. */
        for (size_t i = n; i > 0; i--) {
                r = insert(m, deps[i - 1]);
                if (r < 0)
                        goto out;
        }
        r = insert(m, path);
        if (r < 0)
                goto out;
        load_softdeps(m, want, true, depth);
out:
        strv_free(deps, n);
        return r;
}

int agent_modules_load(agent_modules_t *m, const char *name) { return load(m, name, 0); }
