/* apiserver_secrets.c: the secrets key (file or environment) and sealing values with it. */
#include "services/apiserver/apiserver_secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES

_Static_assert(SECRETS_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key length");
_Static_assert(SECRETS_OVERHEAD == NONCE_LEN + TAG_LEN, "overhead");

static int key_from_env(const char *value, uint8_t key[static SECRETS_KEY_LEN]) {
        size_t n = 0;

        if (sodium_base642bin(key, SECRETS_KEY_LEN, value, strlen(value), " \n", &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            n != SECRETS_KEY_LEN) {
                sodium_memzero(key, SECRETS_KEY_LEN);
                return -EINVAL;
        }
        return 0;
}

static int key_read(int fd, uint8_t key[static SECRETS_KEY_LEN]) {
        uint8_t buf[SECRETS_KEY_LEN + 1];
        struct stat st;
        ssize_t n;

        if (fstat(fd, &st) < 0)
                return -errno;
        /* A key others can read is a key others have: refuse rather than use it. */
        if (!S_ISREG(st.st_mode) || (st.st_mode & 0077))
                return -EPERM;
        n = read(fd, buf, sizeof(buf));
        if (n < 0)
                return -errno;
        if ((size_t)n != SECRETS_KEY_LEN) {
                sodium_memzero(buf, sizeof(buf));
                return -EBADMSG;
        }
        memcpy(key, buf, SECRETS_KEY_LEN);
        sodium_memzero(buf, sizeof(buf));
        return 0;
}

/* O_EXCL: a key that exists is never replaced (that would lose every secret). Written to a
 * temporary name and linked into place, so that a crash cannot leave a short key behind. */
static int key_make(const char *path, uint8_t key[static SECRETS_KEY_LEN]) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        int r = 0;

        if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
        if (fd < 0)
                return -errno;
        randombytes_buf(key, SECRETS_KEY_LEN);
        if (write(fd, key, SECRETS_KEY_LEN) != SECRETS_KEY_LEN || fsync(fd) < 0)
                r = errno ? -errno : -EIO;
        else if (link(tmp, path) < 0)
                r = -errno;
        (void)unlink(tmp);
        if (r < 0)
                sodium_memzero(key, SECRETS_KEY_LEN);
        return r;
}

int secrets_key_load(const char *path, const char *env_value, uint8_t key[static SECRETS_KEY_LEN], int *ret_made) {
        _cleanup_close_ int fd = -1;
        int r;

        if (sodium_init() < 0)
                return -EIO;
        *ret_made = 0;
        if (env_value && *env_value)
                return key_from_env(env_value, key);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd >= 0)
                return key_read(fd, key);
        if (errno != ENOENT)
                return -errno;
        r = key_make(path, key);
        if (r == -EEXIST) { /* made meanwhile by another start: use that one */
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                return fd < 0 ? -errno : key_read(fd, key);
        }
        if (r == 0)
                *ret_made = 1;
        return r;
}

int secrets_seal(const uint8_t key[static SECRETS_KEY_LEN], const char *context, const void *plain, size_t n,
                 uint8_t **ret, size_t *ret_n) {
        uint8_t *out;
        unsigned long long clen = 0;

        if (n > SIZE_MAX - SECRETS_OVERHEAD)
                return -EFBIG;
        out = malloc(n + SECRETS_OVERHEAD);
        if (!out)
                return -ENOMEM;
        randombytes_buf(out, NONCE_LEN);
        if (crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE_LEN, &clen, plain, n, (const uint8_t *)context,
                                                       strlen(context), NULL, out, key) != 0) {
                free(out);
                return -EIO;
        }
        *ret = out;
        *ret_n = NONCE_LEN + (size_t)clen;
        return 0;
}

int secrets_open(const uint8_t key[static SECRETS_KEY_LEN], const char *context, const uint8_t *sealed, size_t n,
                 char **ret, size_t *ret_n) {
        unsigned long long plen = 0;
        char *out;

        if (!sealed || n < SECRETS_OVERHEAD)
                return -EBADMSG;
        out = malloc(n - SECRETS_OVERHEAD + 1);
        if (!out)
                return -ENOMEM;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)out, &plen, NULL, sealed + NONCE_LEN, n - NONCE_LEN,
                                                       (const uint8_t *)context, strlen(context), sealed, key) != 0) {
                free(out);
                return -EKEYREJECTED;
        }
        out[plen] = '\0';
        *ret = out;
        *ret_n = (size_t)plen;
        return 0;
}

void secrets_free(char *plain, size_t n) {
        if (!plain)
                return;
        sodium_memzero(plain, n);
        free(plain);
}
