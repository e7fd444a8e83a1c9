/* oci_pty.c: ptys for terminal containers, the console socket handshake (runc's SCM_RIGHTS), raw mode for the caller's tty. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/oci/oci_pty.h"
#include "lib/util.h"

int oci_pty_open(unsigned rows, unsigned cols, int *ret_master, int *ret_slave, char **ret_error) {
        _cleanup_close_ int master = -1, slave = -1;
        struct termios t;
        char name[64];

        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0)
                return error_set(ret_error, -errno, "cannot open a pty: %m");
        if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name)) != 0)
                return error_set(ret_error, -errno, "cannot set up the pty: %m");
        slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return error_set(ret_error, -errno, "cannot open %s: %m", name);
        if (tcgetattr(slave, &t) == 0) {
                cfmakeraw(&t);
                (void)tcsetattr(slave, TCSANOW, &t);
        }
        if (rows && cols) {
                struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
                (void)ioctl(master, TIOCSWINSZ, &ws);
        }
        *ret_master = TAKE_FD(master);
        *ret_slave = TAKE_FD(slave);
        return 0;
}

int oci_pty_send(const char *path, int fd, char **ret_error) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int s = -1;
        char name[64] = "/dev/ptmx";
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov;
        struct msghdr msg = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof(control.buf)
        };
        struct cmsghdr *c;

        if (strlen(path) >= sizeof(sa.sun_path))
                return error_set(ret_error, -ENAMETOOLONG, "console socket %s: path too long", path);
        strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return error_set(ret_error, -errno, "console socket %s: %m", path);
        (void)ptsname_r(fd, name, sizeof(name));
        iov = (struct iovec){ .iov_base = name, .iov_len = strlen(name) };
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        if (sendmsg(s, &msg, MSG_NOSIGNAL) < 0)
                return error_set(ret_error, -errno, "console socket %s: cannot send the pty: %m", path);
        return 0;
}

int oci_stdio_null(void) {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        for (int k = 0; k <= 2; k++)
                if (fd != k && dup2(fd, k) < 0) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
        if (fd > 2)
                close(fd);
        return 0;
}

int oci_pty_control(int fd) {
        if (setsid() < 0 && errno != EPERM)
                return -errno;
        if (ioctl(fd, TIOCSCTTY, 0) < 0)
                return -errno;
        return 0;
}

int oci_tty_raw(int fd, struct termios *saved) {
        struct termios t;

        if (tcgetattr(fd, saved) < 0)
                return -errno;
        t = *saved;
        cfmakeraw(&t);
        if (tcsetattr(fd, TCSANOW, &t) < 0)
                return -errno;
        return 0;
}

void oci_tty_restore(int fd, const struct termios *saved) { (void)tcsetattr(fd, TCSANOW, saved); }

int oci_tty_size(int fd, unsigned *rows, unsigned *cols) {
        struct winsize ws;

        if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
                return -errno;
        *rows = ws.ws_row;
        *cols = ws.ws_col;
        return 0;
}
