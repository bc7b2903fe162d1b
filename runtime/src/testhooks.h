// SPDX-License-Identifier: BSD-3-Clause
// Test-only pause points.
//
// GORO_TESTHOOK("name") marks a place in the runtime where a test may stop
// the thread that reaches it, to force an interleaving that would otherwise
// be left to chance (the #59600 test is the first user). In builds without
// GORO_TEST_HOOKS it compiles to nothing; with them, an unarmed point costs
// one relaxed load.
#pragma once

#include <atomic>

namespace goro::detail {
#if defined(GORO_TEST_HOOKS)
extern std::atomic<bool> testhooks_armed;
void testhook_hit(const char* name);
#define GORO_TESTHOOK(name)                                                         \
  do {                                                                              \
    if (::goro::detail::testhooks_armed.load(std::memory_order_relaxed))            \
      ::goro::detail::testhook_hit(name);                                           \
  } while (0)
#else
#define GORO_TESTHOOK(name) \
  do {                      \
  } while (0)
#endif
}  // namespace goro::detail
