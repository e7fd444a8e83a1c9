/* agent_channel.c: the husk.agent virtio-serial port: finding it, framed I/O, resync.
 *
 * What the port does when no host is connected (Linux virtio_console, seen under QEMU 7.2
 * with a socket chardev, server=on,wait=off): poll() reports POLLIN|POLLHUP, read()
 * returns 0 and write() blocks, or fails with EAGAIN on a non-blocking fd, until a client
 * connects. The driver sends SIGIO to the fd's owner (O_ASYNC) when the host side opens or
 * closes, which is how the loop learns the host is back without spinning on POLLHUP. */
#include "services/agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PORTS_DIR "/sys/class/virtio-ports"
#define READ_CHUNK 65536
#define VIRTIO_ID_CONSOLE 3 /* the virtio device id of virtio-serial (the Linux uapi virtio_ids.h) */

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* One look at every port's name; -ENOENT when none matches (yet). */
static int find_once(const char *name, char *path, size_t size) {
        _cleanup_(closedirp) DIR *d = opendir(PORTS_DIR);
        struct dirent *de;

        if (!d)
                return errno == ENOENT ? -ENOENT : -errno;
        while ((de = readdir(d))) {
                char file[PATH_MAX], buf[128];
                _cleanup_close_ int fd = -1;
                ssize_t n;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(file, sizeof(file), PORTS_DIR "/%s/name", de->d_name);
                fd = open(file, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                n = read(fd, buf, sizeof(buf) - 1);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                buf[strcspn(buf, "\n")] = '\0';
                if (!streq(buf, name))
                        continue;
                snprintf(path, size, "/dev/%s", de->d_name);
                /* devtmpfs makes the node asynchronously: the name can come first. */
                if (access(path, F_OK) < 0)
                        return -ENOENT;
                return 0;
        }
        return -ENOENT;
}

int agent_channel_find(const char *name, uint64_t timeout_ms, char *path, size_t size) {
        uint64_t deadline = now_monotonic_ms() + timeout_ms;

        /* The port appears once virtio_console probed the device and QEMU told it the
         * port's name: a few ms after the module loaded. A short sleep keeps the single
         * vCPU free for that work. */
        for (;;) {
                int r = find_once(name, path, size);

                if (r != -ENOENT)
                        return r;
                if (now_monotonic_ms() >= deadline)
                        return -ETIMEDOUT;
                nanosleep(&(struct timespec){ .tv_nsec = 2 * 1000 * 1000 }, NULL);
        }
}

bool agent_channel_device_present(void) {
        _cleanup_(closedirp) DIR *d = opendir("/sys/bus/virtio/devices");
        struct dirent *de;

        if (!d)
                return false;
        while ((de = readdir(d))) {
                char file[PATH_MAX], buf[16];
                _cleanup_close_ int fd = -1;
                ssize_t n;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(file, sizeof(file), "/sys/bus/virtio/devices/%s/device", de->d_name);
                fd = open(file, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                n = read(fd, buf, sizeof(buf) - 1);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                if (strtoul(buf, NULL, 16) == VIRTIO_ID_CONSOLE)
                        return true;
        }
        return false;
}

void agent_channel_init(agent_channel_t *c) {
        *c = (agent_channel_t){ .fd = -1, .listen_fd = -1 };
        agent_frame_reader_init(&c->reader);
        msgpack_sbuffer_init(&c->out);
}

int agent_channel_open(agent_channel_t *c, const char *path) {
        int fd, flags;

        if (path != c->path)
                snprintf(c->path, sizeof(c->path), "%s", path);
        fd = open(c->path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* SIGIO to us when the host connects or disconnects. */
        flags = fcntl(fd, F_GETFL);
        if (fcntl(fd, F_SETOWN, getpid()) < 0 || flags < 0 || fcntl(fd, F_SETFL, flags | O_ASYNC) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        c->fd = fd;
        /* Assume connected: the first read tells (0 means no host). */
        c->host_connected = true;
        return 0;
}

void agent_channel_close(agent_channel_t *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        agent_frame_reader_clear(&c->reader);
}

int agent_channel_reopen(agent_channel_t *c) {
        agent_channel_close(c);
        return agent_channel_open(c, c->path);
}

int agent_channel_queue(agent_channel_t *c, const msgpack_sbuffer *body) {
        int r;

        if (c->out.size - c->out_off + 4 + body->size > AGENT_OUT_MAX)
                return -ENOBUFS;
        /* Compact before growing: the written prefix is dead weight. */
        if (c->out_off > 0 && c->out_off == c->out.size) {
                c->out.size = 0;
                c->out_off = 0;
        }
        r = agent_frame_encode(body->data, body->size, &c->out);
        return r;
}

int agent_channel_flush(agent_channel_t *c) {
        while (agent_channel_pending(c)) {
                ssize_t n;

                if (c->fd < 0)
                        return -EPIPE;
                n = write(c->fd, c->out.data + c->out_off, c->out.size - c->out_off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return -EAGAIN;
                        return -errno;
                }
                c->out_off += (size_t)n;
        }
        c->out.size = 0;
        c->out_off = 0;
        return 0;
}

int agent_channel_drain(agent_channel_t *c, uint64_t timeout_ms) {
        uint64_t deadline = now_monotonic_ms() + timeout_ms;

        for (;;) {
                struct pollfd p = { .fd = c->fd, .events = POLLOUT };
                uint64_t now;
                int r = agent_channel_flush(c);

                if (r != -EAGAIN)
                        return r;
                now = now_monotonic_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
                        return -errno;
                /* No host: POLLHUP, and writes would wait for a connection we cannot
                 * count on here. */
                if ((p.revents & POLLHUP) && !(p.revents & POLLOUT))
                        return -EPIPE;
        }
}

int agent_channel_read(agent_channel_t *c) {
        uint8_t buf[READ_CHUNK];
        ssize_t n;
        int r;

        if (c->fd < 0)
                return -EPIPE;
        do
                n = read(c->fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EAGAIN ? -EAGAIN : -errno;
        if (n == 0)
                return -EPIPE;
        c->host_connected = true;
        r = agent_frame_reader_feed(&c->reader, buf, (size_t)n);
        if (r < 0)
                return r;
        return (int)n;
}

void agent_channel_host_gone(agent_channel_t *c) {
        c->host_connected = false;
        /* A vsock connection is over for good: the next host makes a new one. */
        if (c->listen_fd >= 0 && c->fd >= 0) {
                close(c->fd);
                c->fd = -1;
        }
        /* A half-received frame will never be completed by the next host. */
        agent_frame_reader_clear(&c->reader);
        /* Nor will the next host understand the tail of a half-sent one. Whole frames not
         * yet started (the ready frame before the first connection) are kept. */
        if (c->out_off > 0) {
                c->out.size = 0;
                c->out_off = 0;
        }
}
