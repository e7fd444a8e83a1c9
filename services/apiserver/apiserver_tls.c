/* apiserver_tls.c: HTTPS terminated by apiserver with OpenSSL, relayed to civetweb.
 *
 * Why not civetweb's own TLS: Debian 12's civetweb 1.15 loads libssl.so at run time and calls
 * OpenSSL 1.1 functions that OpenSSL 3 no longer exports (SSL_get_peer_certificate is a macro
 * since 3.0); it starts, then jumps to NULL on the first TLS connection (seen here: SIGSEGV
 * at 0x0 in a civetweb worker). So apiserver accepts on the public address itself, completes
 * the handshake with OpenSSL (linked, not loaded), and relays the plaintext to civetweb's
 * internal loopback listener (apiserver_relay.h), registering the client's address so that the
 * audit log and the login slow-down see the real client, not 127.0.0.1. */
#include "services/apiserver/apiserver_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "services/apiserver/apiserver_http.h"

#define TLS_LISTEN_BACKLOG 1024

struct apiserver_tls {
        SSL_CTX *ctx;
        relay_server_t *relay;
};

typedef struct tls_stream {
        relay_stream_t base; /* first: the relay sees this */
        SSL *ssl;
} tls_stream_t;

/* OpenSSL's reasons for the last failure, oldest first, into buf (and its queue emptied). */
static const char *tls_errors(char *buf, size_t size) {
        unsigned long e;
        size_t off = 0;

        buf[0] = '\0';
        while ((e = ERR_get_error()) != 0 && off + 2 < size) {
                char one[256];

                ERR_error_string_n(e, one, sizeof(one));
                off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? "; " : "", one);
        }
        return buf[0] ? buf : "no reason given";
}

/* Wait until fd can do what OpenSSL asked for (err), or the deadline passes. */
static int tls_wait(int fd, int err, uint64_t deadline_ms) {
        struct pollfd p = { .fd = fd, .events = err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN };
        uint64_t now = now_monotonic_ms();
        int n;

        if (now >= deadline_ms)
                return -ETIMEDOUT;
        n = poll(&p, 1, (int)(deadline_ms - now));
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        return n == 0 ? -ETIMEDOUT : 0;
}

static ssize_t tls_recv(relay_stream_t *base, void *buf, size_t n) {
        tls_stream_t *s = (tls_stream_t *)base;
        int k = SSL_read(s->ssl, buf, (int)MIN(n, (size_t)INT32_MAX));

        if (k > 0)
                return k;
        switch (SSL_get_error(s->ssl, k)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
                return -EAGAIN;
        case SSL_ERROR_ZERO_RETURN: /* close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a bare close */
                return 0;
        default:
                ERR_clear_error();
                return -EPROTO;
        }
}

static int tls_send_all(relay_stream_t *base, const void *buf, size_t n) {
        tls_stream_t *s = (tls_stream_t *)base;
        uint64_t deadline = now_monotonic_ms() + RELAY_SEND_TIMEOUT_MS;

        for (size_t off = 0; off < n;) {
                /* A retry after WANT_* passes the same bytes again, as SSL_write requires. */
                int k = SSL_write(s->ssl, (const char *)buf + off, (int)MIN(n - off, (size_t)INT32_MAX));
                int err, r;

                if (k > 0) {
                        off += (size_t)k;
                        continue;
                }
                err = SSL_get_error(s->ssl, k);
                if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                        ERR_clear_error();
                        return -EPIPE;
                }
                r = tls_wait(base->fd, err, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool tls_pending(relay_stream_t *base) { return SSL_pending(((tls_stream_t *)base)->ssl) > 0; }

static void tls_shutdown_write(relay_stream_t *base) {
        /* close_notify, best effort: the client reads the end of the answer either way. */
        (void)SSL_shutdown(((tls_stream_t *)base)->ssl);
        ERR_clear_error();
        (void)shutdown(base->fd, SHUT_WR);
}

static void tls_stream_free(relay_stream_t *base) {
        tls_stream_t *s = (tls_stream_t *)base;

        SSL_free(s->ssl);
        close(base->fd);
        free(s);
}

static const relay_stream_ops_t tls_stream_ops = {
        .recv = tls_recv,
        .send_all = tls_send_all,
        .pending = tls_pending,
        .shutdown_write = tls_shutdown_write,
        .free = tls_stream_free,
};

static void peer_address(int fd, char *buf, size_t size) {
        struct sockaddr_storage a;
        socklen_t len = sizeof(a);
        char host[INET6_ADDRSTRLEN];

        snprintf(buf, size, "unknown");
        if (getpeername(fd, (struct sockaddr *)&a, &len) < 0 ||
            getnameinfo((struct sockaddr *)&a, len, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
                return;
        snprintf(buf, size, "%s", host);
}

/* The first byte of a TLS connection is a handshake record (22). Anything else is most likely
 * plain HTTP sent to the HTTPS port: it gets a plain answer that says so, not a reset. */
static int expect_tls(int fd, uint64_t deadline) {
        unsigned char first;
        ssize_t n;
        int r;

        for (;;) {
                n = recv(fd, &first, 1, MSG_PEEK);
                if (n == 1)
                        break;
                if (n == 0)
                        return -ECONNRESET;
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return -errno;
                r = tls_wait(fd, SSL_ERROR_WANT_READ, deadline);
                if (r < 0)
                        return r;
        }
        if (first == 22)
                return 0;
        relay_refuse(fd, 400, "Bad Request", "this port serves HTTPS (apiserver.tls is set): use an https:// URL");
        return -EPROTO;
}

static int tls_open(void *userdata, int fd, relay_stream_t **ret_stream, relay_origin_t *ret_origin) {
        apiserver_tls_t *t = userdata;
        uint64_t deadline = now_monotonic_ms() + TLS_HANDSHAKE_TIMEOUT_MS;
        tls_stream_t *s = NULL;
        char why[512];
        int r;

        *ret_origin = (relay_origin_t){};
        peer_address(fd, ret_origin->addr, sizeof(ret_origin->addr));
        r = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ? -errno : 0;
        if (r >= 0)
                r = expect_tls(fd, deadline);
        if (r >= 0) {
                s = calloc(1, sizeof(*s));
                r = s ? 0 : -ENOMEM;
        }
        if (r >= 0) {
                s->base = (relay_stream_t){ .ops = &tls_stream_ops, .fd = fd };
                s->ssl = SSL_new(t->ctx);
                r = s->ssl && SSL_set_fd(s->ssl, fd) == 1 ? 0 : -ENOMEM;
        }
        while (r >= 0) {
                int k = SSL_accept(s->ssl), err;

                if (k == 1)
                        break;
                err = SSL_get_error(s->ssl, k);
                if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                        /* Scanners and clients that distrust our certificate end here: not
                         * worth more than a notice. */
                        log_info("TLS handshake with %s failed: %s", ret_origin->addr, tls_errors(why, sizeof(why)));
                        r = -EPROTO;
                        break;
                }
                r = tls_wait(fd, err, deadline);
                if (r == -ETIMEDOUT)
                        log_info("TLS handshake with %s timed out", ret_origin->addr);
        }
        if (r < 0) {
                if (s) {
                        SSL_free(s->ssl);
                        free(s);
                }
                close(fd);
                return r;
        }
        *ret_stream = &s->base;
        return 0;
}

static const relay_listener_ops_t tls_listener_ops = { .name = "TLS listener", .open = tls_open };

static int load_context(const char *cert, const char *key, SSL_CTX **ret) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        char why[512];

        if (!ctx)
                return log_error_errno(ENOMEM, "Failed to make a TLS context: %s", tls_errors(why, sizeof(why)));
        /* TLS 1.2 and 1.3 only; no renegotiation (a client could make us work for nothing);
         * a client that closes without close_notify ends its stream like any other. */
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
                SSL_CTX_free(ctx);
                return log_error_errno(EINVAL, "apiserver.tls.cert: cannot use %s: %s", cert,
                                       tls_errors(why, sizeof(why)));
        }
        /* OpenSSL checks here that the key is the certificate's ("key values mismatch"). */
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
                SSL_CTX_free(ctx);
                return log_error_errno(EINVAL, "apiserver.tls.key: cannot use %s with the certificate in %s: %s", key,
                                       cert, tls_errors(why, sizeof(why)));
        }
        *ret = ctx;
        return 0;
}

/* A listening TCP socket on spec ("host:port", "[v6]:port", as http_listen_spec makes it). */
static int listen_on(const char *spec) {
        const char *colon = strrchr(spec, ':');
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
        struct addrinfo *ai = NULL;
        _cleanup_close_ int fd = -1;
        char host[INET6_ADDRSTRLEN + 2];
        int one = 1, r;

        if (!colon)
                return -EINVAL;
        snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
        if (host[0] == '[') {
                memmove(host, host + 1, strlen(host));
                host[strcspn(host, "]")] = '\0';
        }
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
                return -EINVAL;
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        r = fd < 0 ? -errno : 0;
        /* As any server: a restart must not wait out the old connections' TIME_WAIT. */
        if (r >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                r = -errno;
        if (r >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
                r = -errno;
        if (r >= 0 && listen(fd, TLS_LISTEN_BACKLOG) < 0)
                r = -errno;
        freeaddrinfo(ai);
        return r < 0 ? r : TAKE_FD(fd);
}

int apiserver_tls_start(const char *listen, const char *cert, const char *key, uint16_t internal_port,
                        apiserver_tls_t **ret) {
        _cleanup_(apiserver_tls_freep) apiserver_tls_t *t = NULL;
        char spec[128];
        int fd, r;

        if (!cert || !*cert || !key || !*key)
                return log_error_errno(EINVAL, "apiserver.tls: both cert and key are needed to serve HTTPS");
        r = http_listen_spec(listen, spec, sizeof(spec));
        if (r < 0)
                return log_error_errno(r, "apiserver.listen: \"%s\" is not host:port", listen);
        t = calloc(1, sizeof(*t));
        if (!t)
                return log_error_errno(ENOMEM, "Out of memory");
        r = load_context(cert, key, &t->ctx);
        if (r < 0)
                return r;
        fd = listen_on(spec);
        if (fd < 0)
                return log_error_errno(fd, "Failed to listen on %s: %m", spec);
        r = relay_server_start(fd, internal_port, TLS_CONNECTIONS_MAX, &tls_listener_ops, t, &t->relay);
        if (r < 0)
                return log_error_errno(r, "Failed to start serving HTTPS on %s: %m", spec);
        log_info("REST API listening on https://%s", spec);
        *ret = TAKE_PTR(t);
        return 0;
}

void apiserver_tls_free(apiserver_tls_t *t) {
        if (!t)
                return;
        relay_server_freep(&t->relay);
        SSL_CTX_free(t->ctx);
        free(t);
}

int apiserver_tls_origin(apiserver_t *api, const struct mg_request_info *info, relay_origin_t *ret) {
        apiserver_tls_t *t = __atomic_load_n(&api->tls, __ATOMIC_ACQUIRE);

        return t ? relay_server_origin(t->relay, info, ret) : -ENOENT;
}
