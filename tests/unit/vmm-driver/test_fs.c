/* test_fs.c: virtiofsd for kit-mode images and volumes, with the real virtiofsd: its socket
 * listens before it runs (the VMM need not wait for it), virtiofsd serves what it was handed,
 * and one that cannot start says why, in our words before it runs and in its own after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "tests/unit/require.h"
#include "services/vmm-driver/vmm.h"

#define VHOST_USER_GET_FEATURES 1
#define VHOST_USER_VERSION 0x1
#define VHOST_USER_REPLY 0x4

typedef struct __attribute__((packed)) vhost_user_header {
        uint32_t request, flags, size;
} vhost_user_header_t;

static void require_virtiofsd(void) {
        require(access("/usr/lib/qemu/virtiofsd", X_OK) == 0 && geteuid() == 0,
                "needs root and /usr/lib/qemu/virtiofsd");
}

static int connect_to(const char *dir, const char *name) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd;

        snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, name);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        return fd;
}

/* A virtiofsd started on dir/source (made here), dir being a new temporary directory. */
static pid_t start_on_new_dir(char *dir, instance_record_t *rec) {
        _cleanup_free_ char *why = NULL;
        char source[64];

        require_virtiofsd();
        assert_non_null(mkdtemp(dir));
        snprintf(source, sizeof(source), "%s/source", dir);
        assert_int_equal(mkdir(source, 0755), 0);
        assert_int_equal(vmm_fs_start(dir, source, rec, &why), 0);
        assert_null(why);
        assert_true(rec->fs_pid > 0);
        return (pid_t)rec->fs_pid;
}

/* Issue 20: virtiofsd refused its source and the error was "No child processes". A source that
 * is not a directory is now refused before any process starts, naming it. */
static void test_source_not_a_directory_is_refused_before_it_runs(void **state) {
        _cleanup_(instance_record_clear) instance_record_t rec = {};
        _cleanup_free_ char *why = NULL;
        char dir[] = "/tmp/husk-test-fs-XXXXXX", file[64], sock[80];

        require_virtiofsd();
        assert_non_null(mkdtemp(dir));
        snprintf(file, sizeof(file), "%s/not-a-directory", dir);
        assert_int_equal(write_file_atomic(file, "x", 1, 0644), 0);

        assert_int_equal(vmm_fs_start(dir, file, &rec, &why), -ENOTDIR);
        assert_non_null(why);
        if (!strstr(why, file) || !strstr(why, "is not a directory"))
                fail_msg("unexpected message: %s", why);
        assert_int_equal(rec.fs_pid, 0);
        snprintf(sock, sizeof(sock), "%s/%s", dir, VMM_FS_SOCKET);
        assert_int_equal(access(sock, F_OK), -1);
        assert_int_equal(rm_rf(dir), 0);
}

/* The socket listens when vmm_fs_start returns, whether virtiofsd runs yet or not, and the
 * virtiofsd started answers on it: a vhost-user GET_FEATURES gets its reply. When its VMM goes,
 * it ends, which is no failure. */
static void test_socket_listens_at_once_and_virtiofsd_serves_it(void **state) {
        _cleanup_(instance_record_clear) instance_record_t rec = {};
        _cleanup_free_ char *why = NULL;
        char dir[] = "/tmp/husk-test-fs-XXXXXX", path[80];
        vhost_user_header_t req = { .request = VHOST_USER_GET_FEATURES, .flags = VHOST_USER_VERSION }, reply;
        uint64_t features;
        siginfo_t info = {};
        struct stat st;
        pid_t pid = start_on_new_dir(dir, &rec);
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, VMM_FS_SOCKET);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0600);

        fd = connect_to(dir, VMM_FS_SOCKET);
        assert_int_equal(write(fd, &req, sizeof(req)), sizeof(req));
        /* Blocking reads: virtiofsd answers once it has started and accepted. */
        assert_int_equal(read(fd, &reply, sizeof(reply)), sizeof(reply));
        assert_int_equal(reply.request, VHOST_USER_GET_FEATURES);
        assert_true(reply.flags & VHOST_USER_REPLY);
        assert_int_equal(reply.size, sizeof(features));
        assert_int_equal(read(fd, &features, sizeof(features)), sizeof(features));
        assert_true(features != 0);

        /* Its VMM gone, virtiofsd ends with status 0: reaped, and not a failure to report. */
        close(fd);
        assert_int_equal(waitid(P_PID, pid, &info, WEXITED | WNOWAIT), 0);
        assert_int_equal(info.si_code, CLD_EXITED);
        assert_int_equal(info.si_status, 0);
        assert_int_equal(vmm_fs_failed(dir, &rec, &why), 0);
        assert_null(why);
        assert_int_equal(rec.fs_pid, 0);
        assert_int_equal(rm_rf(dir), 0);
}

/* A virtiofsd that failed is reported once, in its own terms (how it ended, what it logged), and
 * forgotten by the record; one that runs is not. */
static void test_failed_virtiofsd_says_how(void **state) {
        _cleanup_(instance_record_clear) instance_record_t rec = {};
        _cleanup_free_ char *why = NULL;
        char dir[] = "/tmp/husk-test-fs-XXXXXX";
        siginfo_t info = {};
        pid_t pid = start_on_new_dir(dir, &rec);

        assert_int_equal(vmm_fs_failed(dir, &rec, &why), 0);
        assert_null(why);
        assert_int_equal(rec.fs_pid, pid);

        assert_int_equal(kill(pid, SIGKILL), 0);
        /* Until it is a zombie, without reaping it (WNOWAIT): vmm_fs_failed must. */
        assert_int_equal(waitid(P_PID, pid, &info, WEXITED | WNOWAIT), 0);
        assert_int_equal(vmm_fs_failed(dir, &rec, &why), 1);
        assert_non_null(why);
        if (!strstr(why, "virtiofsd was killed by signal 9"))
                fail_msg("unexpected message: %s", why);
        assert_int_equal(rec.fs_pid, 0);
        free(TAKE_PTR(why));
        assert_int_equal(vmm_fs_failed(dir, &rec, &why), 0);
        assert_int_equal(rm_rf(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_source_not_a_directory_is_refused_before_it_runs),
                cmocka_unit_test(test_socket_listens_at_once_and_virtiofsd_serves_it),
                cmocka_unit_test(test_failed_virtiofsd_says_how),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
