/* nesting.h: the one bound on how deep lists and maps may nest in any input husk reads, and
 * the check of JSON text against it that runs before any recursive parser or walker sees it. */
#pragma once

#include <stddef.h>

/* Deepest nesting of lists and maps (JSON, YAML, msgpack, stored JSON) husk accepts: `{}` is 1,
 * `{"a": [1]}` is 2. A Ring manifest file needs 6 (deployments.app.health_checks[0].command),
 * one deployment 4. The bound is what keeps recursive walkers (jansson's parser and dumper, our
 * msgpack converters) off the end of a small thread stack; msgpack-c's unpacker refuses more
 * than MSGPACK_EMBED_STACK_SIZE (32) levels by itself, so this may not exceed that. */
#define HUSK_NESTING_MAX 32u
/* What every refusal says, with HUSK_NESTING_MAX as its argument. */
#define HUSK_NESTING_REASON "nested deeper than %u levels of lists and maps"

/* Where the JSON text first opens a list or map deeper than HUSK_NESTING_MAX. Returns 0 when it
 * does not (or is not JSON at all: that is the parser's to refuse), 1 when it does, with the
 * path of that value ("config.a.a", "labels.x[0][0]") in path, cut with "..." to fit size.
 * Scans with a fixed-size state and no recursion, so any input is safe to hand it. */
int json_nesting_check(const char *text, size_t size, char *path, size_t path_size);
