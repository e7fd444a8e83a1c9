/* agent_vsock.c: the agent channel over AF_VSOCK (port 2375): cloud-hypervisor's hybrid vsock, and husk-agent as a daemon in disk images. */
#include "services/agent/agent.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

int agent_vsock_listen(agent_channel_t *c, unsigned port) {
        struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
        _cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
                return -errno;
        snprintf(c->path, sizeof(c->path), "vsock:%u", port);
        c->listen_fd = TAKE_FD(fd);
        c->fd = -1;
        c->host_connected = false;
        return 0;
}

int agent_vsock_accept(agent_channel_t *c) {
        int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        /* One host at a time: the newest is the live one (the old one's vmm-driver is gone). */
        if (c->fd >= 0) {
                agent_channel_host_gone(c);
                agent_frame_reader_clear(&c->reader);
        }
        c->fd = fd;
        c->host_connected = true;
        log_agent_debug("host connected on %s", c->path);
        return 0;
}
