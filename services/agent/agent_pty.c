/* agent_pty.c: ptys for terminal procs: a master the agent reads and writes, a slave that becomes the process's controlling tty. */
#include "services/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define VEOF_DEFAULT 4 /* ^D */

/* The slave of master, opened through the master itself (TIOCGPTPEER, Linux 4.13): no path
 * lookup, so it works whatever the root holds at /dev/pts. Falls back to the name. */
static int open_peer(int master, int flags) {
        char name[64];
        int fd = ioctl(master, TIOCGPTPEER, flags);

        if (fd >= 0)
                return fd;
        if (ptsname_r(master, name, sizeof(name)) != 0)
                return -1;
        return open(name, flags);
}

int agent_pty_open(uint16_t rows, uint16_t cols, int *ret_master, int *ret_slave) {
        _cleanup_close_ int master = -1, slave = -1;
        int r;

        master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (master < 0)
                return -errno;
        if (unlockpt(master) < 0)
                return -errno;
        slave = open_peer(master, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return -errno;
        r = agent_pty_resize(master, rows, cols);
        if (r < 0)
                return r;
        *ret_master = TAKE_FD(master);
        *ret_slave = TAKE_FD(slave);
        return 0;
}

int agent_pty_resize(int master, uint16_t rows, uint16_t cols) {
        struct winsize ws = { .ws_row = rows, .ws_col = cols };

        /* The kernel sends SIGWINCH to the slave's foreground process group when it changed. */
        return ioctl(master, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

char agent_pty_veof(int master) {
        struct termios t;
        _cleanup_close_ int slave = open_peer(master, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);

        /* The master has termios of its own: the slave's are what the process set. */
        if (slave < 0 || tcgetattr(slave, &t) < 0 || t.c_cc[VEOF] == _POSIX_VDISABLE)
                return VEOF_DEFAULT;
        return (char)t.c_cc[VEOF];
}
