/* oci_pty.h: the host side of a container's terminal: a pty whose master goes to the caller over --console-socket (SCM_RIGHTS, as runc), or the caller's own tty in raw mode. */
#pragma once

#include <stdbool.h>
#include <termios.h>

/* A new pty: *ret_master and *ret_slave (cloexec), the slave raw (the guest's pty does the line
 * discipline: ours must pass bytes through untouched), sized rows x cols unless 0. */
int oci_pty_open(unsigned rows, unsigned cols, int *ret_master, int *ret_slave, char **ret_error);
/* Send fd over the unix socket at path with SCM_RIGHTS, the pty's name as payload (runc's). */
int oci_pty_send(const char *path, int fd, char **ret_error);
/* fds 0, 1 and 2 onto /dev/null: with a console socket the caller's stdio is not the container's,
 * and the caller (go-runc) waits for every writer of its stdout and stderr pipes to go before it
 * reads the pty's master: a holder that kept them would block the create forever. */
int oci_stdio_null(void);
/* Make fd the controlling terminal of a new session of ours: window-size changes on the master
 * then raise SIGWINCH here. */
int oci_pty_control(int fd);
/* The caller's tty in raw mode (saved in *saved); oci_tty_restore puts it back. */
int oci_tty_raw(int fd, struct termios *saved);
void oci_tty_restore(int fd, const struct termios *saved);
/* fd's window size; -errno when it has none. */
int oci_tty_size(int fd, unsigned *rows, unsigned *cols);
