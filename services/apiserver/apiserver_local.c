/* apiserver_local.c: the API on a unix socket, for local users identified by the kernel.
 *
 * apiserver accepts on the socket itself, reads the peer's credentials once per connection
 * (SO_PEERCRED, SO_PEERGROUPS), refuses strangers there, and relays each admitted connection to
 * civetweb's internal listener with the identity as its origin (apiserver_relay.h says why a
 * relay, and why the identity cannot be forged). */
#include "services/apiserver/apiserver_local.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "services/apiserver/apiserver_relay.h"

#define LOCAL_GROUPS_MAX 256
#define LOCAL_CONNECTIONS_MAX 64 /* local users at once (a CLI holds one while it runs) */

struct apiserver_local {
        gid_t group; /* members are operators, when has_group */
        bool has_group;
        char *path;
        int listen_fd; /* until the relay server takes it */
        bool bound;    /* path is our socket: removed when we stop */
        relay_server_t *relay;
};

int apiserver_local_identity(apiserver_t *api, const struct mg_request_info *info, auth_identity_t *ret) {
        /* Set once, after civetweb already serves: requests before that are no local ones. */
        apiserver_local_t *l = __atomic_load_n(&api->local, __ATOMIC_ACQUIRE);
        relay_origin_t origin;

        if (!l || relay_server_origin(l->relay, info, &origin) < 0 || !origin.has_identity)
                return -ENOENT;
        *ret = origin.identity;
        return 0;
}

/* Whether the peer is in group: its primary gid or one of its supplementary groups, as the
 * kernel recorded them when it connected (SO_PEERGROUPS, Linux 4.13). */
static bool peer_in_group(int fd, const struct ucred *cred, gid_t group) {
        gid_t groups[LOCAL_GROUPS_MAX];
        socklen_t len = sizeof(groups);

        if (cred->gid == group)
                return true;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return false; /* ERANGE: more groups than we look at; not a member we can prove */
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (groups[i] == group)
                        return true;
        return false;
}

/* The identity of the peer on fd: 0, or -EPERM for someone who may not use the socket. */
static int peer_identity(const apiserver_local_t *l, int fd, auth_identity_t *ret) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        *ret = (auth_identity_t){ .via = AUTH_VIA_LOCAL };
        snprintf(ret->name, sizeof(ret->name), "uid:%u", (unsigned)cred.uid);
        if (cred.uid == 0)
                ret->role = AUTH_ROLE_ADMIN;
        else if (l->has_group && peer_in_group(fd, &cred, l->group))
                ret->role = AUTH_ROLE_OPERATOR;
        else
                return -EPERM;
        ret->scopes = auth_role_scopes(ret->role);
        return 0;
}

/* The relay's admission: root and the group's members, as themselves; strangers are told
 * to log in over TCP. */
static int local_open(void *userdata, int fd, relay_stream_t **ret_stream, relay_origin_t *ret_origin) {
        const apiserver_local_t *l = userdata;
        int r;

        *ret_origin = (relay_origin_t){ .has_identity = true };
        snprintf(ret_origin->addr, sizeof(ret_origin->addr), "local");
        r = peer_identity(l, fd, &ret_origin->identity);
        if (r == -EPERM)
                relay_refuse(fd, 403, "Forbidden",
                             "only root and members of apiserver.socket_group may use this socket; log in over TCP "
                             "instead");
        else if (r < 0)
                log_warning_errno(r, "Local API socket: cannot read the peer's credentials: %m");
        if (r < 0) {
                close(fd);
                return r;
        }
        return relay_stream_plain(fd, ret_stream);
}

static const relay_listener_ops_t local_ops = { .name = "local API socket", .open = local_open };

static int bind_socket(apiserver_local_t *l) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        mode_t old;
        int r;

        if (strlen(l->path) >= sizeof(a.sun_path))
                return -ENAMETOOLONG;
        memcpy(a.sun_path, l->path, strlen(l->path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A socket left by an apiserver that died; only ever a socket (never follow or remove
         * anything else someone put there). */
        struct stat st;
        if (lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void)unlink(l->path);
        /* Never reachable by others between bind() and chmod(). */
        old = umask(0177);
        r = bind(fd, (struct sockaddr *)&a, sizeof(a));
        umask(old);
        if (r < 0)
                return -errno;
        l->bound = true;
        if (l->has_group && chown(l->path, (uid_t)-1, l->group) < 0)
                return -errno;
        if (chmod(l->path, 0660) < 0)
                return -errno;
        if (listen(fd, 128) < 0)
                return -errno;
        l->listen_fd = TAKE_FD(fd);
        return 0;
}

int apiserver_local_start(apiserver_t *api, const char *runtime_dir, const char *group, uint16_t internal_port) {
        _cleanup_(apiserver_local_freep) apiserver_local_t *l = NULL;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return log_error_errno(ENOMEM, "Out of memory");
        l->listen_fd = -1;
        if (asprintf(&l->path, "%s/" HUSK_API_SOCKET, runtime_dir) < 0) {
                l->path = NULL;
                return log_error_errno(ENOMEM, "Out of memory");
        }
        if (group && *group) {
                struct group *g = getgrnam(group);

                if (!g)
                        return log_error_errno(ENOENT, "apiserver.socket_group: no group \"%s\"", group);
                l->group = g->gr_gid;
                l->has_group = true;
        }
        r = mkdir_p(runtime_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", runtime_dir);
        r = bind_socket(l);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on %s: %m", l->path);
        r = relay_server_start(TAKE_FD(l->listen_fd), internal_port, LOCAL_CONNECTIONS_MAX, &local_ops, l, &l->relay);
        if (r < 0)
                return log_error_errno(r, "Failed to start serving %s: %m", l->path);
        log_info("REST API for local users on %s (root: admin%s%s%s)", l->path, l->has_group ? "; group " : "",
                 l->has_group ? group : "", l->has_group ? ": operator" : "");
        __atomic_store_n(&api->local, TAKE_PTR(l), __ATOMIC_RELEASE);
        return 0;
}

void apiserver_local_free(apiserver_local_t *l) {
        if (!l)
                return;
        /* Stops accepting and waits for the relays, which use l. */
        relay_server_freep(&l->relay);
        if (l->listen_fd >= 0)
                close(l->listen_fd);
        if (l->bound)
                (void)unlink(l->path);
        free(l->path);
        free(l);
}
