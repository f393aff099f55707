// Helpers shared by the libFuzzer targets in tests/fuzz/.
//
// FUZZ_CHECK states an invariant of the code under test; when it fails the
// target prints what broke and aborts, so libFuzzer (or the corpus replay)
// records the input as a crash. Header-only; no state.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                               \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)
