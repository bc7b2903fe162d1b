// epoll-based network poller. See netpoll.h.
#include "netpoll.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace goro::detail {

namespace {
Lock initlock;
std::atomic<bool> inited{false};
int epfd = -1;
int breakfd = -1;
std::atomic<std::uint32_t> wakesig{0};  // a netpoll_break is pending
std::atomic<std::int32_t> waiters{0};

// A pollDesc: which G waits on which fd. rg is null (nobody waits), a G, or
// kReady (readiness arrived before anybody parked).
struct PollDesc {
  int fd;
  std::atomic<std::uintptr_t> rg{0};
};
constexpr std::uintptr_t kReady = 1;

}  // namespace

void netpoll_init() {
  initlock.lock();
  if (!inited.load()) {
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) throw_("runtime: netpollinit failed (epoll_create1)");
    breakfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (breakfd < 0) throw_("runtime: netpollinit failed (eventfd)");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &breakfd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, breakfd, &ev) != 0) throw_("runtime: netpollinit failed (epoll_ctl)");
    inited.store(true, std::memory_order_release);
  }
  initlock.unlock();
}

bool netpoll_inited() { return inited.load(std::memory_order_acquire); }
bool netpoll_anywaiters() { return waiters.load(std::memory_order_relaxed) > 0; }

void netpoll_break() {
  if (!netpoll_inited()) return;
  std::uint32_t zero = 0;
  if (!wakesig.compare_exchange_strong(zero, 1)) return;  // one is pending already
  std::uint64_t one = 1;
  while (write(breakfd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

G* netpoll(std::int64_t delay) {
  if (!netpoll_inited()) return nullptr;
  int waitms;
  if (delay < 0) waitms = -1;
  else if (delay == 0) waitms = 0;
  else if (delay < 1000000) waitms = 1;
  else if (delay < 1000000000000ll) waitms = static_cast<int>(delay / 1000000);
  else waitms = 1000000;
  epoll_event events[128];
  for (;;) {
    int n = epoll_wait(epfd, events, 128, waitms);
    if (n < 0) {
      if (errno != EINTR) throw_("runtime: netpoll failed");
      if (waitms > 0) return nullptr;  // let the caller recompute its delay
      continue;
    }
    G* head = nullptr;
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == &breakfd) {
        std::uint64_t v;
        while (read(breakfd, &v, sizeof v) < 0 && errno == EINTR) {
        }
        wakesig.store(0);
        continue;
      }
      auto* pd = static_cast<PollDesc*>(events[i].data.ptr);
      std::uintptr_t old = pd->rg.exchange(kReady, std::memory_order_acq_rel);
      if (old > kReady) {
        G* gp = reinterpret_cast<G*>(old);
        gp->schedlink = head;
        head = gp;
      }
    }
    if (waitms < 0 && !head && n == 0) continue;
    return head;
  }
}

void netpoll_wait_readable(int fd) {
  if (!getg()) throw_("netpoll: wait outside a goroutine");
  netpoll_init();
  PollDesc pd{fd};
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.ptr = &pd;
  waiters.fetch_add(1);
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    waiters.fetch_sub(1);
    throw_("netpoll: epoll_ctl add failed");
  }
  gopark(
      [](G* gp, void* arg) {
        auto* p = static_cast<PollDesc*>(arg);
        std::uintptr_t expect = 0;
        // false: readiness already arrived; run on.
        return p->rg.compare_exchange_strong(expect, reinterpret_cast<std::uintptr_t>(gp),
                                             std::memory_order_acq_rel);
      },
      &pd, "IO wait");
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
  waiters.fetch_sub(1);
}

}  // namespace goro::detail
