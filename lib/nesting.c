/* nesting.c: a non-recursive scan of JSON text that finds lists and maps nested too deep. */
#include "lib/nesting.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct frame {
        bool object;
        size_t index;    /* list: the item being read */
        const char *key; /* map: the key being read (raw, between its quotes) */
        size_t key_len;
} frame_t;

/* Field paths as the manifest validator writes them: "a.b[2].c". Key bytes that could not be
 * shown in a message are replaced by '?'. */
static void write_path(const frame_t *stack, size_t depth, char *buf, size_t size) {
        size_t n = 0;
        bool cut = false;

        if (size == 0)
                return;
        buf[0] = '\0';
        for (size_t i = 0; i < depth && !cut; i++) {
                char part[96];
                size_t len = 0;

                if (!stack[i].object)
                        len = (size_t)snprintf(part, sizeof(part), "[%zu]", stack[i].index);
                else {
                        if (n > 0)
                                part[len++] = '.';
                        for (size_t k = 0; k < stack[i].key_len && len < sizeof(part) - 1; k++) {
                                unsigned char ch = (unsigned char)stack[i].key[k];
                                part[len++] = ch >= 0x20 && ch < 0x7f && ch != '\\' ? (char)ch : '?';
                        }
                        part[len] = '\0';
                }
                if (n + len + 4 > size) {
                        cut = true;
                        break;
                }
                memcpy(buf + n, part, len);
                n += len;
        }
        if (cut && size >= 4) {
                if (n + 4 > size)
                        n = size - 4;
                memcpy(buf + n, "...", 3);
                n += 3;
        }
        buf[n] = '\0';
}

int json_nesting_check(const char *text, size_t size, char *path, size_t path_size) {
        frame_t stack[HUSK_NESTING_MAX];
        size_t depth = 0;
        bool expect_key = false;

        for (size_t i = 0; i < size; i++) {
                char ch = text[i];

                switch (ch) {
                case '"': {
                        size_t start = ++i;

                        while (i < size && text[i] != '"')
                                i += text[i] == '\\' ? 2 : 1;
                        if (i >= size)
                                return 0; /* unterminated: the parser says so */
                        if (expect_key && depth > 0) {
                                stack[depth - 1].key = text + start;
                                stack[depth - 1].key_len = i - start;
                                expect_key = false;
                        }
                        break;
                }
                case '{':
                case '[':
                        if (depth == HUSK_NESTING_MAX) {
                                write_path(stack, depth, path, path_size);
                                return 1;
                        }
                        stack[depth++] = (frame_t){ .object = ch == '{' };
                        expect_key = ch == '{';
                        break;
                case '}':
                case ']':
                        if (depth == 0)
                                return 0;
                        depth--;
                        expect_key = false;
                        break;
                case ',':
                        if (depth == 0)
                                break;
                        if (stack[depth - 1].object)
                                expect_key = true;
                        else
                                stack[depth - 1].index++;
                        break;
                default:
                        break;
                }
        }
        return 0;
}
