/* require.h: a unit test that cannot run here (not root, a tool missing) skips, except under
 * CI=true where it fails: a CI run must not pass without the tests it could not run. The mirror of
 * require() in tests/integration/husk_stack.py. Include after <cmocka.h>. */
#pragma once

#include <stdlib.h>
#include <string.h>

#define require(condition, why)                                                  \
        do {                                                                     \
                if (!(condition)) {                                              \
                        const char *ci_ = getenv("CI");                          \
                        if (ci_ && strcmp(ci_, "true") == 0)                     \
                                fail_msg("cannot run under CI=true: %s", (why)); \
                        skip();                                                  \
                }                                                                \
        } while (0)
