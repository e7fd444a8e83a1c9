/* apiserver_secrets.h: the key secrets are encrypted with at rest, and the authenticated cipher
 * (libsodium's XChaCha20-Poly1305) that seals and opens them. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SECRETS_KEY_LEN 32
/* Nonce and tag around every sealed value. */
#define SECRETS_OVERHEAD (24 + 16)
/* The environment variable that, set, holds the key (base64 of SECRETS_KEY_LEN bytes) instead of
 * the key file. */
#define SECRETS_KEY_ENV "HUSK_SECRETS_KEY"

/* The key: from env_value (base64; NULL or "": none) when given, else from the file at path,
 * made (SECRETS_KEY_LEN random bytes, mode 0600, never replaced) when it does not exist. *ret_made
 * says whether it was just made. -EINVAL for an env value that is no base64 key of the right
 * length, -EBADMSG for a key file of the wrong size, -EPERM for a key file others may read. */
int secrets_key_load(const char *path, const char *env_value, uint8_t key[static SECRETS_KEY_LEN], int *ret_made);

/* Seal n bytes of plain under key, bound to context (the row's id: a value copied into another
 * row does not open). *ret (malloc'd) is nonce || ciphertext || tag, n + SECRETS_OVERHEAD bytes. */
int secrets_seal(const uint8_t key[static SECRETS_KEY_LEN], const char *context, const void *plain, size_t n,
                 uint8_t **ret, size_t *ret_n);

/* The inverse: *ret is the plain text plus a NUL (malloc'd; free it with secrets_free()).
 * -EKEYREJECTED when the tag does not verify (another key, another row, a changed byte): never
 * garbage. -EBADMSG when sealed is too short to be a sealed value. */
int secrets_open(const uint8_t key[static SECRETS_KEY_LEN], const char *context, const uint8_t *sealed, size_t n,
                 char **ret, size_t *ret_n);

/* Wipe and free a value secrets_open() gave (NULL: nothing). */
void secrets_free(char *plain, size_t n);
