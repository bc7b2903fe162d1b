// SPDX-License-Identifier: BSD-3-Clause
// A program state in which sysmon polls the network, for tests that force
// a race around sysmon's netpoll injection (test_59600.cpp's
// NetpollWaiters, scx_export_test.cpp's INJECTING flag). Test builds only:
// it needs the runtime's test exports.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "export_test.h"
#include "goro/goro.h"

namespace goro_test {

// Under GORO_MAXPROCS=1: U, a G, waits on a pipe in the netpoller while R,
// another G, holds the only P -- so no M polls the network and sysmon does
// (nobody has for 10 ms). Once U is parked and R spins, driver(wfd, stop)
// runs on a plain thread: it writes wfd when U is to be woken and sets
// stop to let R end. Returns after U has read its byte and the driver has
// returned. fail must not return; it is called if U never parks within
// 10 s or a pipe operation fails. R yields until U is parked, since
// nothing else may take the P from it (no asynchronous preemption under
// TSan). R may outlive this call (a driver that never sets stop leaves it
// spinning, and run() abandons it): it holds the flags it reads, never
// this frame's locals.
inline void sysmon_polls_round(const std::function<void(int wfd, std::atomic<bool>& stop)>& driver,
                               void (*fail)(const char*)) {
  namespace tx = goro::testexport;
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) fail("pipe2");
  struct Flags {
    std::atomic<bool> spinning{false}, stop{false};
  };
  auto flags = std::make_shared<Flags>();
  goro::Chan<int> done;
  std::thread d([&] {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!flags->spinning.load()) {
      if (std::chrono::steady_clock::now() > deadline) fail("U never parked in the netpoller while R ran");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    driver(fds[1], flags->stop);
  });
  goro::go([flags] {  // R
    while (tx::netpoll_waiters() < 1) goro::gosched();
    flags->spinning = true;
    while (!flags->stop.load()) {
    }
  });
  goro::go([done, fd = fds[0], fail]() mutable {  // U
    tx::wait_readable(fd);
    char b;
    if (read(fd, &b, 1) != 1) fail("read");
    done.send(1);
  });
  if (!done.recv()) fail("done closed");
  d.join();
  close(fds[0]);
  close(fds[1]);
}

}  // namespace goro_test
