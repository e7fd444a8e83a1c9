/* oci_chan.c: frames on a non-blocking stream, and the CLI's one-request calls to a holder's control socket. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/oci/oci.h"
#include "cli/oci/oci_chan.h"
#include "lib/mp.h"

void oci_chan_init(oci_chan_t *c, int fd) {
        *c = (oci_chan_t){ .fd = fd };
        agent_frame_reader_init(&c->reader);
        msgpack_sbuffer_init(&c->out);
}

void oci_chan_done(oci_chan_t *c) {
        if (c->fd >= 0)
                close(c->fd);
        agent_frame_reader_clear(&c->reader);
        msgpack_sbuffer_destroy(&c->out);
        *c = (oci_chan_t){ .fd = -1 };
}

int oci_chan_flush(oci_chan_t *c) {
        while (c->out_off < c->out.size) {
                ssize_t n =
                        send(c->fd, c->out.data + c->out_off, c->out.size - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return 0;
                if (n < 0)
                        return -errno;
                c->out_off += (size_t)n;
        }
        /* All sent: start the buffer over rather than let it grow. */
        msgpack_sbuffer_clear(&c->out);
        c->out_off = 0;
        return 0;
}

int oci_chan_send(oci_chan_t *c, const msgpack_sbuffer *body) {
        if (c->out.size - c->out_off + body->size > OCI_CHAN_OUT_MAX)
                return -ENOBUFS;
        if (agent_frame_encode(body->data, body->size, &c->out) < 0)
                return -ENOMEM;
        return oci_chan_flush(c);
}

int oci_chan_read(oci_chan_t *c) {
        char buf[65536];
        ssize_t n;

        n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return 0;
        if (n <= 0) {
                c->eof = true;
                return n < 0 ? -errno : 0;
        }
        return agent_frame_reader_feed(&c->reader, buf, (size_t)n);
}

int oci_chan_next(oci_chan_t *c, msgpack_unpacked *ret) { return agent_frame_reader_next(&c->reader, ret); }

int oci_ctl_connect(const char *dir, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;

        /* Relative to the container directory: a long --root must not hit sun_path's limit. */
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" OCI_CONTROL_SOCKET, fd);
        {
                _cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (s < 0)
                        return -errno;
                if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        return -errno;
                *ret_fd = TAKE_FD(s);
        }
        return 0;
}

int oci_chan_wait_frame(oci_chan_t *c, int timeout_ms, msgpack_unpacked *ret) {
        uint64_t deadline = now_monotonic_ms() + (uint64_t)timeout_ms;
        int r;

        for (;;) {
                struct pollfd p = { .fd = c->fd, .events = POLLIN | (oci_chan_pending(c) ? POLLOUT : 0) };
                uint64_t now;

                r = oci_chan_next(c, ret);
                if (r != 0)
                        return r < 0 ? -EBADMSG : 1;
                if (c->eof)
                        return -ECONNRESET;
                now = now_monotonic_ms();
                if (timeout_ms >= 0 && now >= deadline)
                        return -ETIMEDOUT;
                r = poll(&p, 1, timeout_ms < 0 ? -1 : (int)(deadline - now));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (p.revents & POLLOUT && (r = oci_chan_flush(c)) < 0)
                        return r;
                if (p.revents & (POLLIN | POLLHUP | POLLERR) && (r = oci_chan_read(c)) < 0)
                        return r;
        }
}

int oci_ctl_call(const char *dir, const msgpack_sbuffer *request, int timeout_ms, msgpack_unpacked *ret,
                 char **ret_error) {
        oci_chan_t c;
        int fd, r;

        *ret_error = NULL;
        r = oci_ctl_connect(dir, &fd);
        if (r < 0)
                return r;
        oci_chan_init(&c, fd);
        r = oci_chan_send(&c, request);
        if (r >= 0)
                r = oci_chan_wait_frame(&c, timeout_ms, ret);
        oci_chan_done(&c);
        if (r < 0)
                return r;
        if (mp_str_eq(mp_map_get(&ret->data, "type"), "error")) {
                if (mp_get_str(&ret->data, "message", 4096, ret_error) < 0)
                        *ret_error = NULL;
                msgpack_unpacked_destroy(ret);
                return -EIO;
        }
        return 0;
}
