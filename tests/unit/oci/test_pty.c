/* test_pty.c: the console socket handshake as runc does it (the pty's master over SCM_RIGHTS, its name as payload), and the raw slave that passes bytes untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/oci/oci_pty.h"
#include "lib/util.h"

/* What the shim does: listen, accept one connection, take the fd from its message. */
static int receive_fd(int listener, char *name, size_t name_size) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = name, .iov_len = name_size - 1 };
        struct msghdr msg = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof(control.buf)
        };
        struct cmsghdr *c;
        int s, fd = -1;
        ssize_t n;

        s = accept(listener, NULL, NULL);
        assert_true(s >= 0);
        n = recvmsg(s, &msg, 0);
        assert_true(n > 0);
        name[n] = '\0';
        c = CMSG_FIRSTHDR(&msg);
        assert_non_null(c);
        assert_int_equal(c->cmsg_type, SCM_RIGHTS);
        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        close(s);
        return fd;
}

static void test_console_socket_handshake(void **state) {
        char dir[] = "/tmp/test_oci_pty.XXXXXX", path[64], name[128], buf[16];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        unsigned rows, cols;
        int listener, master, slave, got;
        char *error = NULL;
        struct winsize ws = { .ws_row = 50, .ws_col = 132 };

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/pty.sock", dir);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        listener = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(bind(listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(listener, 1), 0);

        assert_int_equal(oci_pty_open(24, 80, &master, &slave, &error), 0);
        assert_int_equal(oci_tty_size(slave, &rows, &cols), 0);
        assert_int_equal(rows, 24);
        assert_int_equal(cols, 80);
        assert_int_equal(oci_pty_send(path, master, &error), 0);
        got = receive_fd(listener, name, sizeof(name));
        assert_true(got >= 0);
        assert_int_equal(strncmp(name, "/dev/pts/", 9), 0);
        close(master);

        /* The shim's writes reach us untouched (raw: no echo, no line editing, no CR mapping)... */
        assert_int_equal(write(got, "a\rb\n", 4), 4);
        assert_int_equal(read(slave, buf, sizeof(buf)), 4);
        assert_memory_equal(buf, "a\rb\n", 4);
        /* ...ours reach it untouched... */
        assert_int_equal(write(slave, "x\ny", 3), 3);
        assert_int_equal(read(got, buf, sizeof(buf)), 3);
        assert_memory_equal(buf, "x\ny", 3);
        /* ...and its resize is what we read back to forward to the guest. */
        assert_int_equal(ioctl(got, TIOCSWINSZ, &ws), 0);
        assert_int_equal(oci_tty_size(slave, &rows, &cols), 0);
        assert_int_equal(rows, 50);
        assert_int_equal(cols, 132);

        close(got);
        close(slave);
        close(listener);
        assert_int_equal(rm_rf(dir), 0);
}

static void test_console_socket_missing(void **state) {
        int master, slave;
        char *error = NULL;

        assert_int_equal(oci_pty_open(0, 0, &master, &slave, &error), 0);
        assert_true(oci_pty_send("/nonexistent/pty.sock", master, &error) < 0);
        assert_non_null(strstr(error, "console socket /nonexistent/pty.sock"));
        free(error);
        close(master);
        close(slave);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_console_socket_handshake),
                cmocka_unit_test(test_console_socket_missing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
