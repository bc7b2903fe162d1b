// SPDX-License-Identifier: BSD-3-Clause
// epoll-based network poller. See netpoll.h.
#include "netpoll.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace goro::detail {

// rg/wg states: no waiter and no pending readiness; readiness arrived and
// was not consumed yet; a G is about to park; otherwise the parked G.
constexpr std::uintptr_t pdNil = 0;
constexpr std::uintptr_t pdReady = 1;
constexpr std::uintptr_t pdWait = 2;

struct PollDesc {
  PollDesc* link = nullptr;  // in the cache, guarded by pdcache lock
  PollDesc* alllink = nullptr;
  int fd = -1;
  Lock lock{LockRank::polldesc};  // guards everything below except rg/wg
  std::atomic<std::uintptr_t> rg{pdNil};
  std::atomic<std::uintptr_t> wg{pdNil};
  std::atomic<bool> closing{false};
  std::atomic<std::uintptr_t> fdseq{0};  // bumped on every reuse
  std::uintptr_t rseq = 0;               // bumped on deadline changes
  std::uintptr_t wseq = 0;
  std::atomic<std::int64_t> rd{0};  // read deadline: 0 none, < 0 expired
  std::atomic<std::int64_t> wd{0};
  RuntimeTimer rt;
  RuntimeTimer wt;
};

namespace {
Lock initlock{LockRank::netpollinit};
std::atomic<bool> inited{false};
int epfd = -1;
int breakfd = -1;
std::atomic<std::uint32_t> wakesig{0};  // a netpoll_break is pending
std::atomic<std::int32_t> waiters{0};

Lock pdcachelock{LockRank::pdcache};
PollDesc* pdcache = nullptr;
PollDesc* allpds = nullptr;

// netpollunblock: the mode's readiness (ioready) or a wake-up without
// readiness (deadline, close). Returns the G to ready, if one was parked.
G* netpollunblock(PollDesc* pd, char mode, bool ioready) {
  std::atomic<std::uintptr_t>& gpp = mode == 'r' ? pd->rg : pd->wg;
  for (;;) {
    std::uintptr_t old = gpp.load(std::memory_order_acquire);
    if (old == pdReady) return nullptr;
    // Only readiness is remembered: a deadline or close with nobody
    // waiting is seen by netpoll_reset/netpoll_wait via their checks.
    if (old == pdNil && !ioready) return nullptr;
    std::uintptr_t nw = ioready ? pdReady : pdNil;
    if (gpp.compare_exchange_weak(old, nw, std::memory_order_acq_rel)) {
      if (old == pdWait) old = pdNil;
      return reinterpret_cast<G*>(old);
    }
  }
}

int checkerr(PollDesc* pd, char mode) {
  if (pd->closing.load(std::memory_order_acquire)) return EBADF;
  if ((mode == 'r' && pd->rd.load() < 0) || (mode == 'w' && pd->wd.load() < 0)) return ETIMEDOUT;
  return 0;
}

bool blockcommit(G* gp, void* arg) {
  auto* gpp = static_cast<std::atomic<std::uintptr_t>*>(arg);
  std::uintptr_t expect = pdWait;
  bool ok = gpp->compare_exchange_strong(expect, reinterpret_cast<std::uintptr_t>(gp), std::memory_order_acq_rel);
  if (ok) waiters.fetch_add(1);
  return ok;
}

// netpollblock returns true when the mode is ready, false on a wake-up
// without readiness (deadline, close).
bool netpollblock(PollDesc* pd, char mode) {
  std::atomic<std::uintptr_t>& gpp = mode == 'r' ? pd->rg : pd->wg;
  for (;;) {
    std::uintptr_t v = pdReady;
    if (gpp.compare_exchange_strong(v, pdNil, std::memory_order_acq_rel)) return true;
    v = pdNil;
    if (gpp.compare_exchange_strong(v, pdWait, std::memory_order_acq_rel)) break;
    if (v != pdReady && v != pdNil) throw_("runtime: double wait");
  }
  // The checks after pdWait pair with the unblockers: they either see
  // pdWait and clear it, or we see their error here.
  if (checkerr(pd, mode) == 0) {
    gopark(blockcommit, &gpp, "IO wait");
  }
  std::uintptr_t old = gpp.exchange(pdNil, std::memory_order_acq_rel);
  if (old > pdWait) throw_("runtime: corrupted polldesc");
  return old == pdReady;
}

void deadline_fired(void* arg, std::uintptr_t seq, char mode) {
  auto* pd = static_cast<PollDesc*>(arg);
  pd->lock.lock();
  // A stale timer (the deadline changed, or the pd was reused) does nothing.
  if (seq != (mode == 'r' ? pd->rseq : pd->wseq)) {
    pd->lock.unlock();
    return;
  }
  (mode == 'r' ? pd->rd : pd->wd).store(-1);
  G* g = netpollunblock(pd, mode, false);
  pd->lock.unlock();
  if (g) {
    goready(g);
    waiters.fetch_sub(1);  // after: see netpoll.h
  }
}
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
std::int32_t netpoll_nwaiters() { return waiters.load(std::memory_order_relaxed); }

void netpoll_break() {
  if (!netpoll_inited()) return;
  std::uint32_t zero = 0;
  if (!wakesig.compare_exchange_strong(zero, 1)) return;  // one is pending already
  std::uint64_t one = 1;
  while (write(breakfd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

G* netpoll(std::int64_t delay, std::int32_t* delta) {
  *delta = 0;
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
    std::int32_t taken = 0;
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == &breakfd) {
        std::uint64_t v;
        while (read(breakfd, &v, sizeof v) < 0 && errno == EINTR) {
        }
        wakesig.store(0);
        continue;
      }
      auto* pd = static_cast<PollDesc*>(events[i].data.ptr);
      std::uint32_t ev = events[i].events;
      bool r = ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
      bool w = ev & (EPOLLOUT | EPOLLHUP | EPOLLERR);
      for (char mode : {'r', 'w'}) {
        if (!(mode == 'r' ? r : w)) continue;
        if (G* g = netpollunblock(pd, mode, true)) {
          taken++;
          g->schedlink = head;
          head = g;
        }
      }
    }
    if (waitms < 0 && !head && n == 0) continue;
    *delta = -taken;
    return head;
  }
}

void netpoll_adjust_waiters(std::int32_t delta) {
  if (delta != 0) waiters.fetch_add(delta);
}

PollDesc* netpoll_open(int fd, int* err) {
  NoPreempt np;
  netpoll_init();
  pdcachelock.lock();
  PollDesc* pd = pdcache;
  if (pd) {
    pdcache = pd->link;
  } else {
    pd = new PollDesc();
    pd->alllink = allpds;
    allpds = pd;
  }
  pdcachelock.unlock();
  pd->lock.lock();
  pd->fd = fd;
  pd->closing.store(false);
  pd->fdseq.fetch_add(1);
  pd->rg.store(pdNil);
  pd->wg.store(pdNil);
  pd->rseq++;
  pd->wseq++;
  pd->rd.store(0);
  pd->wd.store(0);
  pd->lock.unlock();
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = pd;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    *err = errno;
    pdcachelock.lock();
    pd->link = pdcache;
    pdcache = pd;
    pdcachelock.unlock();
    return nullptr;
  }
  return pd;
}

void netpoll_unblock(PollDesc* pd) {
  NoPreempt np;
  pd->lock.lock();
  if (pd->closing.load()) throw_("runtime: unblock on closing polldesc");
  pd->closing.store(true, std::memory_order_release);
  pd->rseq++;
  pd->wseq++;
  G* rg = netpollunblock(pd, 'r', false);
  G* wg = netpollunblock(pd, 'w', false);
  deltimer(&pd->rt);
  deltimer(&pd->wt);
  pd->lock.unlock();
  if (rg) {
    goready(rg);
    waiters.fetch_sub(1);  // after: see netpoll.h
  }
  if (wg) {
    goready(wg);
    waiters.fetch_sub(1);
  }
}

void netpoll_close(PollDesc* pd) {
  NoPreempt np;
  if (!pd->closing.load()) throw_("runtime: close polldesc w/o unblock");
  std::uintptr_t w = pd->wg.load(), r = pd->rg.load();
  if ((w != pdNil && w != pdReady) || (r != pdNil && r != pdReady)) {
    throw_("runtime: blocked read/write on closing polldesc");
  }
  epoll_ctl(epfd, EPOLL_CTL_DEL, pd->fd, nullptr);
  pdcachelock.lock();
  pd->link = pdcache;
  pdcache = pd;
  pdcachelock.unlock();
}

int netpoll_reset(PollDesc* pd, char mode) {
  int err = checkerr(pd, mode);
  if (err) return err;
  if (mode == 'r') pd->rg.store(pdNil);
  else if (mode == 'w') pd->wg.store(pdNil);
  return 0;
}

int netpoll_wait(PollDesc* pd, char mode) {
  NoPreempt np;
  int err = checkerr(pd, mode);
  if (err) return err;
  while (!netpollblock(pd, mode)) {
    err = checkerr(pd, mode);
    if (err) return err;
    // A spurious wake-up (a deadline pushed back meanwhile): wait again.
  }
  return 0;
}

void netpoll_set_deadline(PollDesc* pd, std::int64_t d, char mode) {
  NoPreempt np;
  pd->lock.lock();
  if (pd->closing.load()) {
    pd->lock.unlock();
    return;
  }
  if (d > 0 && d <= nanotime()) d = -1;  // already passed
  G* wake[2] = {nullptr, nullptr};
  for (char m : {'r', 'w'}) {
    if (mode != 'b' && mode != m) continue;
    RuntimeTimer& t = m == 'r' ? pd->rt : pd->wt;
    std::uintptr_t& seq = m == 'r' ? pd->rseq : pd->wseq;
    (m == 'r' ? pd->rd : pd->wd).store(d);
    seq++;  // any armed timer is stale now
    deltimer(&t);
    if (d > 0) {
      t.when = d;
      t.arg = pd;
      t.seq = seq;
      t.f = m == 'r' ? [](void* a, std::uintptr_t s) { deadline_fired(a, s, 'r'); }
                     : [](void* a, std::uintptr_t s) { deadline_fired(a, s, 'w'); };
      addtimer(&t);
    } else if (d < 0) {
      wake[m == 'r' ? 0 : 1] = netpollunblock(pd, m, false);
    }
  }
  pd->lock.unlock();
  for (G* g : wake) {
    if (g) {
      goready(g);
      waiters.fetch_sub(1);  // after: see netpoll.h
    }
  }
}

void netpoll_wait_readable(int fd) {
  if (!getg()) throw_("netpoll: wait outside a goroutine");
  int err = 0;
  PollDesc* pd = netpoll_open(fd, &err);
  if (!pd) throw_("netpoll: epoll_ctl add failed");
  netpoll_wait(pd, 'r');
  netpoll_unblock(pd);
  netpoll_close(pd);
}

void netpoll_abandon_waiters() {
  pdcachelock.lock();
  for (PollDesc* pd = allpds; pd; pd = pd->alllink) {
    for (auto* gpp : {&pd->rg, &pd->wg}) {
      std::uintptr_t v = gpp->load();
      if (v > pdWait) gpp->store(pdNil);
    }
  }
  pdcachelock.unlock();
  waiters.store(0);
}

}  // namespace goro::detail
