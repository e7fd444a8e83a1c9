/* apiserver.c: wires the store, the bus sockets and the REST server together, and takes them apart in order. */
#include "services/apiserver/apiserver.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_auth.h"
#include "services/apiserver/apiserver_bus.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_local.h"
#include "services/apiserver/apiserver_node.h"
#include "services/apiserver/apiserver_metrics.h"
#include "services/apiserver/apiserver_secrets.h"
#include "services/apiserver/apiserver_tls.h"
#include "services/apiserver/apiserver_volumes.h"

/* The key secrets are sealed with: HUSK_SECRETS_KEY, else the key file (made on first start).
 * A key that does not open the database's check value stops the start: every secret would
 * fail to open, and new ones would be sealed under a key the old ones do not share. */
static int open_secrets_key(apiserver_t *api, const husk_config_t *config) {
        const char *env = getenv(SECRETS_KEY_ENV), *path = config->apiserver.secrets_key_file;
        uint8_t key[SECRETS_KEY_LEN];
        _cleanup_free_ char *dir = strdup(path);
        int r, made = 0;

        if (!dir)
                return log_error_errno(ENOMEM, "Out of memory");
        if (!env || !*env) {
                r = mkdir_p(dirname(dir), 0700);
                if (r < 0)
                        return log_error_errno(r, "Failed to create the directory of %s: %m", path);
        }
        r = secrets_key_load(path, env, key, &made);
        if (r == -EINVAL)
                return log_error_errno(r, "%s is set but is not the base64 of a %d-byte key", SECRETS_KEY_ENV,
                                       SECRETS_KEY_LEN);
        if (r == -EPERM)
                return log_error_errno(r, "The secrets key file %s may be read by others: make it mode 0600", path);
        if (r == -EBADMSG)
                return log_error_errno(r, "The secrets key file %s does not hold a %d-byte key", path, SECRETS_KEY_LEN);
        if (r < 0)
                return log_error_errno(r, "Failed to read or make the secrets key %s: %m", path);
        r = store_secrets_key_set(api->store, key);
        explicit_bzero(key, sizeof(key));
        if (r == -EKEYREJECTED)
                return log_error_errno(r,
                                       "The secrets key (%s) is not the one this database's secrets were sealed "
                                       "with: refusing to start; give the original key file or %s",
                                       env && *env ? SECRETS_KEY_ENV : path, SECRETS_KEY_ENV);
        if (r < 0)
                return log_error_errno(r, "Failed to check the secrets key: %m");
        if (made)
                log_notice("Made the secrets key %s (mode 0600): back it up with the database; without it no "
                           "secret can be read",
                           path);
        return 0;
}

static int open_store(apiserver_t *api, const husk_config_t *config) {
        const char *path = config->apiserver.database;
        _cleanup_free_ char *dir = strdup(path);
        int r;

        if (!dir)
                return log_error_errno(ENOMEM, "Out of memory");
        r = mkdir_p(dirname(dir), 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create the directory of %s: %m", path);
        r = apiserver_volumes_set_dir(config->state_dir);
        if (r < 0)
                return log_error_errno(r, "Out of memory");
        r = store_open(path, &api->store);
        if (r == -EPROTONOSUPPORT)
                return log_error_errno(r,
                                       "%s was written by a newer husk (schema version above what this one knows); "
                                       "refusing to touch it",
                                       path);
        if (r < 0)
                return log_error_errno(r, "Failed to open the database %s: %m", path);
        log_info("Database %s at schema version %d", path, store_schema_version(api->store));
        return open_secrets_key(api, config);
}

/* First start: with no user in the store, an `admin` with a random password, which goes to a
 * 0600 file in the state dir (never to the log: logs are copied around). Whoever can read that
 * file is root already. Written before the user exists, so that a crash in between leaves a
 * file that matches nothing rather than a user nobody can log in as. */
static int first_admin(apiserver_t *api, const husk_config_t *config) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        char password[AUTH_INITIAL_PASSWORD_LEN + 1], hash[AUTH_PASSWORD_HASH_MAX], line[AUTH_INITIAL_PASSWORD_LEN + 2];
        int r, n;

        r = store_user_count(api->store);
        if (r < 0)
                return log_error_errno(r, "Failed to count users: %m");
        if (r > 0)
                return 0;
        if (asprintf(&path, "%s/" APISERVER_ADMIN_PASSWORD_FILE, config->state_dir) < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        r = mkdir_p(config->state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", config->state_dir);
        r = auth_password_random(password);
        if (r >= 0)
                r = auth_password_hash(password, hash);
        if (r < 0)
                return log_error_errno(r, "Failed to make the first admin's password: %m");
        n = snprintf(line, sizeof(line), "%s\n", password);
        (void)unlink(path); /* a leftover may have any owner and mode: never write through it */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || write(fd, line, (size_t)n) != n || fsync(fd) < 0)
                return log_error_errno(errno ?: EIO, "Failed to write the first admin's password to %s: %m", path);
        r = store_user_create(api->store, "admin", AUTH_ROLE_ADMIN, hash, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to create the first admin: %m");
        log_notice("No user existed: created \"admin\", whose password is in %s (log in with `husk login`, "
                   "then change it with `husk user passwd` and remove the file)",
                   path);
        return 0;
}

static int open_bus(apiserver_t *api, const husk_config_t *config, zloop_t *loop) {
        const husk_endpoints_t *own = &config->bus[HUSK_DAEMON_APISERVER];
        const char *vmm = config->bus[HUSK_DAEMON_VMM_DRIVER].requests;
        const char *logd = config->bus[HUSK_DAEMON_LOGD].requests;
        const char *sched = config->bus[HUSK_DAEMON_SCHEDULER].requests;
        int r;

        r = bus_pub_new(own->events, &api->pub);
        if (r < 0)
                return log_error_errno(r, "Failed to bind the event socket %s: %m", own->events);
        r = bus_server_new(own->requests, apiserver_bus_methods, api, &api->server);
        if (r < 0)
                return log_error_errno(r, "Failed to bind the request socket %s: %m", own->requests);
        bus_server_set_stats(api->server, apiserver_metrics_pack_stats, api);
        r = bus_server_attach(api->server, loop);
        if (r < 0)
                return log_error_errno(r, "Failed to serve requests on the event loop: %m");
        r = apiserver_metrics_new(config, loop, &api->metrics);
        if (r < 0)
                return log_error_errno(r, "Failed to listen for instance metrics: %m");
        /* Connecting does not need vmm-driver up: ZeroMQ connects when it appears. */
        r = bus_pool_new(vmm, APISERVER_CLIENTS_IDLE, &api->vmm);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the vmm-driver client for %s: %m", vmm);
        r = bus_pool_new(logd, APISERVER_CLIENTS_IDLE, &api->logd);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the logd client for %s: %m", logd);
        r = bus_pool_new(sched, APISERVER_CLIENTS_IDLE, &api->scheduler);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the scheduler client for %s: %m", sched);
        return 0;
}

int apiserver_new(const husk_config_t *config, zloop_t *loop, apiserver_t **ret) {
        _cleanup_(apiserver_freep) apiserver_t *api = NULL;
        int r;

        api = calloc(1, sizeof(*api));
        if (!api)
                return log_error_errno(ENOMEM, "Out of memory");
        api->metrics_auth = config->apiserver.metrics_auth;
        api->logd_events = strdup(config->bus[HUSK_DAEMON_LOGD].events ?: "");
        if (!api->logd_events)
                return log_error_errno(ENOMEM, "Out of memory");
        r = apiserver_node_init(config);
        if (r < 0)
                return log_error_errno(r, "Out of memory");

        r = auth_init();
        if (r < 0)
                return log_error_errno(r, "Failed to initialize libsodium: %m");
        r = open_store(api, config);
        if (r < 0)
                return r;
        r = first_admin(api, config);
        if (r < 0)
                return r;
        r = open_bus(api, config, loop);
        if (r < 0)
                return r;
        /* Last: requests may arrive as soon as it listens. */
        r = http_start(api, config);
        if (r < 0)
                return r;
        r = apiserver_local_start(api, config->runtime_dir, config->apiserver.socket_group, api->http_internal_port);
        if (r < 0)
                return r;
        if (http_serves_tls(config)) {
                apiserver_tls_t *tls = NULL;

                r = apiserver_tls_start(config->apiserver.listen, config->apiserver.tls_cert, config->apiserver.tls_key,
                                        api->http_internal_port, &tls);
                if (r < 0)
                        return r;
                __atomic_store_n(&api->tls, tls, __ATOMIC_RELEASE);
        }
        *ret = TAKE_PTR(api);
        return 0;
}

void apiserver_free(apiserver_t *api) {
        if (!api)
                return;
        /* mg_stop() joins the workers, so nothing below is in use by then. */
        http_stop(api);
        apiserver_local_freep(&api->local);
        apiserver_tls_freep(&api->tls);
        bus_server_destroy(&api->server);
        apiserver_metrics_free(&api->metrics);
        bus_pool_destroy(&api->vmm);
        bus_pool_destroy(&api->logd);
        bus_pool_destroy(&api->scheduler);
        bus_pub_destroy(&api->pub);
        store_close(&api->store);
        free(api->logd_events);
        apiserver_node_done();
        free(api);
}

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && streq(a, b)); }

int apiserver_reload(const husk_config_t *old, const husk_config_t *fresh) {
        bool endpoints = false;

        if (!same(old->apiserver.listen, fresh->apiserver.listen))
                log_notice("apiserver.listen changed: it applies at the next restart of husk-apiserver");
        if (!same(old->apiserver.tls_cert, fresh->apiserver.tls_cert) ||
            !same(old->apiserver.tls_key, fresh->apiserver.tls_key))
                log_notice("apiserver.tls changed: it applies at the next restart of husk-apiserver");
        if (!same(old->apiserver.socket_group, fresh->apiserver.socket_group) ||
            !same(old->runtime_dir, fresh->runtime_dir))
                log_notice("apiserver.socket_group or runtime_dir changed: they apply at the next restart of "
                           "husk-apiserver");
        if (old->apiserver.metrics_auth != fresh->apiserver.metrics_auth)
                log_notice("apiserver.metrics_auth changed: it applies at the next restart of husk-apiserver");
        if (!same(old->apiserver.database, fresh->apiserver.database) || !same(old->state_dir, fresh->state_dir))
                log_notice("apiserver.database or state_dir changed: they apply at the next restart of husk-apiserver");
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++)
                endpoints |= !same(old->bus[d].events, fresh->bus[d].events) ||
                             !same(old->bus[d].requests, fresh->bus[d].requests);
        if (endpoints)
                log_notice("bus endpoints changed: husk-apiserver uses them from its next restart");
        return 0;
}
