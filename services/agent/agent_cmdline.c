/* agent_cmdline.c: words of the kernel command line: husk.* keys and module options. */
#include "services/agent/agent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Split off the next word the way the kernel does (next_arg() in lib/cmdline.c): spaces
 * separate words except inside double quotes. Returns false at the end. */
static bool next_word(const char **p, const char **word, size_t *len) {
        const char *s = *p;
        bool quoted = false;

        while (*s == ' ' || *s == '\t' || *s == '\n')
                s++;
        if (!*s)
                return false;
        *word = s;
        for (; *s; s++) {
                if (*s == '"')
                        quoted = !quoted;
                else if (!quoted && (*s == ' ' || *s == '\t' || *s == '\n'))
                        break;
        }
        *len = (size_t)(s - *word);
        *p = s;
        return true;
}

/* Copy a value without its double quotes. */
static char *unquote(const char *v, size_t len) {
        char *s = malloc(len + 1), *d = s;

        if (!s)
                return NULL;
        for (size_t i = 0; i < len; i++)
                if (v[i] != '"')
                        *d++ = v[i];
        *d = '\0';
        return s;
}

int cmdline_get(const char *cmdline, const char *key, char **ret) {
        size_t klen = strlen(key), len;
        const char *p = cmdline, *word, *found = NULL;
        size_t found_len = 0;

        while (next_word(&p, &word, &len))
                if (len > klen && memcmp(word, key, klen) == 0 && word[klen] == '=') {
                        found = word + klen + 1;
                        found_len = len - klen - 1;
                }
        if (!found)
                return -ENOENT;
        *ret = unquote(found, found_len);
        return *ret ? 0 : -ENOMEM;
}

static bool module_char_eq(char a, char b) { return a == b || ((a == '-' || a == '_') && (b == '-' || b == '_')); }

int cmdline_module_options(const char *cmdline, const char *module, char **ret) {
        size_t mlen = strlen(module), len, n = 0;
        const char *p = cmdline, *word;
        _cleanup_free_ char *opts = malloc(strlen(cmdline) + 1);

        if (!opts)
                return -ENOMEM;
        while (next_word(&p, &word, &len)) {
                size_t i;
                const char *eq;

                if (len <= mlen + 1 || word[mlen] != '.')
                        continue;
                for (i = 0; i < mlen && module_char_eq(word[i], module[i]); i++)
                        ;
                if (i < mlen)
                        continue;
                /* "mod.param" with no '=' is a boolean the kernel accepts as such. */
                eq = memchr(word, '=', len);
                if (eq && eq < word + mlen)
                        continue;
                if (n > 0)
                        opts[n++] = ' ';
                memcpy(opts + n, word + mlen + 1, len - mlen - 1);
                n += len - mlen - 1;
        }
        opts[n] = '\0';
        *ret = TAKE_PTR(opts);
        return 0;
}

bool agent_hostname_valid(const char *id) {
        size_t n = strlen(id);

        if (n == 0 || n > 63 || id[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = id[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
                        return false;
        }
        return true;
}
