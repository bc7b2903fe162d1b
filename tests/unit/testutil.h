// Helpers shared by the unit tests: waiting without blocking the P, and
// checking that a test left no goroutine behind.
#pragma once

#include <chrono>

#include <gtest/gtest.h>

#include "goro/goro.h"

namespace goro_test {

// Spend d in the calling goroutine, yielding the P all along.
inline void sleep_cooperatively(std::chrono::steady_clock::duration d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < deadline) goro::gosched();
}

// Yield until pred() holds or timeout passes; returns pred().
template <typename Pred>
bool eventually(Pred pred, std::chrono::steady_clock::duration timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred() && std::chrono::steady_clock::now() < deadline) goro::gosched();
  return pred();
}

// Every goroutine a test started has exited (only main is left).
inline void expect_only_main_left() {
  EXPECT_TRUE(eventually([] { return goro::num_goroutine() == 1; }))
      << "goroutines started by the test did not exit: num_goroutine=" << goro::num_goroutine();
}

}  // namespace goro_test
