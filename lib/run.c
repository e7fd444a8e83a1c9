/* run.c: run a short-lived tool to completion with its output captured (see run.h). */
#include "lib/run.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/child.h"
#include "lib/util.h"

int run_find_tool(const char *name, char **ret) {
        const char *p = RUN_TOOL_PATH;

        if (!name || !*name || strchr(name, '/'))
                return -EINVAL;
        while (*p) {
                size_t n = strcspn(p, ":");
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%.*s/%s", (int)n, p, name) < 0)
                        return -ENOMEM;
                if (access(path, X_OK) == 0) {
                        *ret = TAKE_PTR(path);
                        return 0;
                }
                p += n;
                if (*p == ':')
                        p++;
        }
        return -ENOENT;
}

/* What the tool wrote, read back from the start of the memfd it wrote into: bounded, so a
 * chatty tool costs at most RUN_OUTPUT_MAX bytes here. */
static char *read_output(int fd) {
        char *buf = malloc(RUN_OUTPUT_MAX + 1);
        ssize_t n;

        if (!buf)
                return NULL;
        n = pread(fd, buf, RUN_OUTPUT_MAX, 0);
        if (n < 0)
                n = 0;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        buf[n] = '\0';
        return buf;
}

int run_tool(char *const argv[], char *const env[], char **ret_output) {
        static char *const default_env[] = { "PATH=" RUN_TOOL_PATH, "LC_ALL=C", NULL };
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int out = -1;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        int r, status;
        pid_t pid;

        if (ret_output)
                *ret_output = NULL;
        if (!argv || !argv[0])
                return -EINVAL;
        if (strchr(argv[0], '/')) {
                path = strdup(argv[0]);
                if (!path)
                        return -ENOMEM;
        } else {
                r = run_find_tool(argv[0], &path);
                if (r < 0)
                        return r;
        }
        /* A memfd, not a pipe: the tool never blocks on a full pipe while we wait for it. */
        out = memfd_create("run-output", MFD_CLOEXEC);
        if (out < 0)
                return -errno;

        r = posix_spawnattr_init(&attr);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_init(&fa);
        if (r != 0) {
                posix_spawnattr_destroy(&attr);
                return -r;
        }
        r = -child_spawnattr_reset_signals(&attr, 0);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, out, STDERR_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
        if (r == 0)
                r = posix_spawn(&pid, path, &fa, &attr, argv, env ? env : default_env);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return -r;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (ret_output) {
                *ret_output = read_output(out);
                if (!*ret_output)
                        return -ENOMEM;
        }
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}
