// SPDX-License-Identifier: BSD-3-Clause
// Test-only pause points: see testhooks.h. Threads parked here are OS
// threads (Ms, sysmon) outside any goroutine, so plain std::mutex and
// condition variables are the right tools.
#if defined(GORO_TEST_HOOKS)
#include "testhooks.h"

#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "export_test.h"

namespace goro::detail {

std::atomic<bool> testhooks_armed{false};

namespace {
struct Point {
  // Threads arriving here block. Written under mu; atomic because a
  // spinning waiter polls it without mu (see testhook_hit).
  std::atomic<bool> armed{false};
  bool spin = false;    // ...busy-waiting (runnable for the kernel), not sleeping
  int reached = 0;      // how many threads arrived since arming
  int waiting = 0;      // how many are blocked now
};
std::mutex mu;
std::condition_variable cv;
std::map<std::string, Point>& points() {
  static auto* m = new std::map<std::string, Point>();
  return *m;
}
}  // namespace

void testhook_hit(const char* name) {
  std::unique_lock<std::mutex> lk(mu);
  auto it = points().find(name);
  if (it == points().end()) return;
  Point& p = it->second;
  p.reached++;
  cv.notify_all();
  if (!p.armed) return;
  p.waiting++;
  if (p.spin) {
    // Busy-wait: the kernel must see this thread runnable throughout, as
    // it would see a thread that is merely slow -- so without mu, which
    // the test's driver takes often enough to put a waiter to sleep on it.
    // Yield between looks so a 2-CPU host still runs everything else.
    lk.unlock();
    while (p.armed.load(std::memory_order_acquire)) {
      for (int i = 0; i < 64; i++) __builtin_ia32_pause();
      sched_yield();
    }
    lk.lock();
  } else {
    cv.wait(lk, [&] { return !p.armed; });
  }
  p.waiting--;
}

}  // namespace goro::detail

namespace goro::testexport {
using namespace goro::detail;

void hook_arm(const std::string& name, bool spin) {
  std::lock_guard<std::mutex> lk(mu);
  Point& p = points()[name];
  p.armed = true;
  p.spin = spin;
  p.reached = 0;
  testhooks_armed.store(true);
}

void hook_disarm_all() {
  std::lock_guard<std::mutex> lk(mu);
  for (auto& [n, p] : points()) p.armed = false;
  testhooks_armed.store(false);
  cv.notify_all();
}

bool hook_wait_reached(const std::string& name, int timeout_ms) {
  std::unique_lock<std::mutex> lk(mu);
  return cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return points()[name].reached > 0; });
}

bool hook_reached(const std::string& name) {
  std::lock_guard<std::mutex> lk(mu);
  return points()[name].reached > 0;
}

void hook_release(const std::string& name) {
  std::lock_guard<std::mutex> lk(mu);
  points()[name].armed = false;
  cv.notify_all();
}

}  // namespace goro::testexport
#endif
