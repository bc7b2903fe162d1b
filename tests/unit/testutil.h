// SPDX-License-Identifier: BSD-3-Clause
// Helpers shared by the unit tests: waiting without blocking the P, and
// checking that a test left no goroutine behind.
#pragma once

#include <chrono>

#include <gtest/gtest.h>

#include "goro/goro.h"

namespace goro_test {

// Go's `defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n))`: GOMAXPROCS is n
// for the scope and what it was after. Inside goro::run only.
class ScopedMaxprocs {
 public:
  explicit ScopedMaxprocs(int n) : prev_(goro::maxprocs(n)) {}
  ~ScopedMaxprocs() { goro::maxprocs(prev_); }
  ScopedMaxprocs(const ScopedMaxprocs&) = delete;
  ScopedMaxprocs& operator=(const ScopedMaxprocs&) = delete;

 private:
  int prev_;
};

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

// GoGroup starts goroutines that use the test's locals and joins them
// before those locals die, on every way out of the frame (an ASSERT's early
// return too): declare it after everything its goroutines use. Each
// goroutine's last act is done() on the group's own WaitGroup, after which
// it touches nothing of the frame. Only for goroutines that end on their
// own (a bounded sleep, a write that cannot block); one that may block
// forever needs owned state instead.
class GoGroup {
 public:
  GoGroup() = default;
  GoGroup(const GoGroup&) = delete;
  GoGroup& operator=(const GoGroup&) = delete;
  ~GoGroup() { wg_.wait(); }

  template <typename F>
  void go(F f) {
    wg_.add(1);
    goro::go([this, f = std::move(f)]() mutable {
      f();
      wg_.done();
    });
  }
  void wait() { wg_.wait(); }

 private:
  goro::WaitGroup wg_;
};

// Every goroutine a test started has exited (only main is left).
inline void expect_only_main_left() {
  EXPECT_TRUE(eventually([] { return goro::num_goroutine() == 1; }))
      << "goroutines started by the test did not exit: num_goroutine=" << goro::num_goroutine();
}

}  // namespace goro_test
