// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// Channels, after Go's chan.go.
//
// Invariants (c.lock held):
//   at least one of c.sendq and c.recvq is empty, except for an unbuffered
//   channel with a single G blocked on it for both sending and receiving
//   through select;
//   for buffered channels: qcount > 0 implies recvq is empty, and
//   qcount < dataqsiz implies sendq is empty.
//
// Values are C++ objects: they are moved, never copied bytewise. A value
// travels from the sender's frame into the buffer or straight into a parked
// receiver's storage (both are on stacks that cannot move while their G is
// parked); a buffer slot is destroyed after its value is moved out.
#include <cstdlib>
#include <new>

#include "chan.h"

namespace goro::detail {

void WaitQ::enqueue(Sudog* sg) {
  sg->next = nullptr;
  sg->prev = last;
  if (last) last->next = sg;
  else __atomic_store_n(&first, sg, __ATOMIC_RELAXED);  // read racily by full()/empty()
  last = sg;
}

Sudog* WaitQ::dequeue() {
  for (;;) {
    Sudog* sg = first;
    if (!sg) return nullptr;
    __atomic_store_n(&first, sg->next, __ATOMIC_RELAXED);
    if (first) first->prev = nullptr;
    else last = nullptr;
    sg->next = sg->prev = nullptr;
    // A G in select may already have been woken by another case: its
    // selectDone flag is set then, and this sudog must be skipped.
    if (sg->isSelect) {
      std::uint32_t zero = 0;
      if (!sg->g->selectDone.compare_exchange_strong(zero, 1)) continue;
    }
    return sg;
  }
}

void WaitQ::remove(Sudog* sg) {
  if (sg->prev) sg->prev->next = sg->next;
  else if (first == sg) __atomic_store_n(&first, sg->next, __ATOMIC_RELAXED);
  else return;  // not queued
  if (sg->next) sg->next->prev = sg->prev;
  else last = sg->prev;
  sg->next = sg->prev = nullptr;
}

hchan* makechan(const ElemOps* ops, std::size_t cap) {
  if (cap > (std::size_t(1) << 40) / (ops->size ? ops->size : 1)) goro::panic("makechan: size out of range");
  auto* c = new hchan();
  c->ops = ops;
  c->dataqsiz = cap;
  if (cap > 0) {
    c->buf = static_cast<unsigned char*>(::operator new(cap * ops->size, std::align_val_t(ops->align)));
  }
  return c;
}

void chan_retain(hchan* c) noexcept { c->refs.fetch_add(1, std::memory_order_relaxed); }

void chan_release(hchan* c) noexcept {
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // Last handle: destroy what is still buffered.
  for (std::size_t i = 0; i < c->qcount; i++) {
    c->ops->destroy(c->slot((c->recvx + i) % c->dataqsiz));
  }
  if (c->buf) ::operator delete(c->buf, std::align_val_t(c->ops->align));
  delete c;
}

// Thread-safety analysis cannot follow a lock handed from a G to g0's
// park commit, nor the partner hand-offs that unlock through a callback:
// the functions doing so are exempt (GORO_NO_TSA) and say why here.
static bool chanparkcommit(G* gp, void* arg) GORO_NO_TSA {
  (void)gp;
  static_cast<hchan*>(arg)->lock.unlock();
  return true;
}

void chan_bufsend_locked(hchan* c, void* ep) {
  c->ops->move_construct(c->slot(c->sendx), ep);
  if (++c->sendx == c->dataqsiz) c->sendx = 0;
  __atomic_store_n(&c->qcount, c->qcount + 1, __ATOMIC_RELAXED);
}

void chan_bufrecv_locked(hchan* c, void* ep) {
  void* qp = c->slot(c->recvx);
  if (ep) c->ops->move_construct(ep, qp);
  c->ops->destroy(qp);
  if (++c->recvx == c->dataqsiz) c->recvx = 0;
  __atomic_store_n(&c->qcount, c->qcount - 1, __ATOMIC_RELAXED);
}

// A nil channel (a moved-from Chan) is Go's nil channel: a send or receive
// on it blocks forever (the G is parked for good, so checkdead counts it),
// a non-blocking one fails, close panics.
[[noreturn]] static void park_forever(const char* reason) {
  if (!getg()) throw_("operation on a nil channel outside a goroutine");
  gopark(nullptr, nullptr, reason);
  throw_("unreachable");
}

bool chansend(hchan* c, void* ep, bool block) GORO_NO_TSA {
  NoPreempt np;
  checkpreempt();
  if (c == nullptr) {
    if (!block) return false;
    park_forever("chan send (nil chan)");
  }
  // Fast path: a non-blocking send on a full, open channel fails without
  // the lock. See Go's chan.go for why the racy reads are fine: closed is
  // read after full-ness, and a channel never goes from closed to open.
  if (!block && !c->closed.load(std::memory_order_relaxed) && c->full()) return false;

  c->lock.lock();
  if (c->closed.load(std::memory_order_relaxed)) {
    c->lock.unlock();
    goro::panic("send on closed channel");
  }
  if (Sudog* sg = c->recvq.dequeue()) {
    // A receiver is waiting: pass the value straight to it, bypassing the
    // buffer.
    chan_send_locked(c, sg, ep, [c]() GORO_NO_TSA { c->lock.unlock(); });
    return true;
  }
  if (c->qcount < c->dataqsiz) {
    chan_bufsend_locked(c, ep);
    c->lock.unlock();
    return true;
  }
  if (!block) {
    c->lock.unlock();
    return false;
  }
  // Block on the channel. Someone will complete the operation for us.
  G* gp = getg();
  if (!gp) throw_("chansend: called outside a goroutine");
  Sudog mysg;
  mysg.g = gp;
  mysg.elem = ep;
  mysg.c = c;
  gp->waiting = &mysg;
  gp->param = nullptr;
  c->sendq.enqueue(&mysg);
  gopark(chanparkcommit, c, "chan send");
  gp = getg();
  gp->waiting = nullptr;
  gp->param = nullptr;
  if (!mysg.success) goro::panic("send on closed channel");
  return true;
}

RecvResult chanrecv(hchan* c, void* ep, bool block) GORO_NO_TSA {
  NoPreempt np;
  checkpreempt();
  if (c == nullptr) {
    if (!block) return {false, false};
    park_forever("chan receive (nil chan)");
  }
  // Fast path: a non-blocking receive on an empty channel.
  if (!block && c->empty()) {
    if (!c->closed.load(std::memory_order_acquire)) return {false, false};
    // Closed: re-check emptiness, since a send may have raced in before
    // the close.
    if (c->empty()) return {true, false};
  }

  c->lock.lock();
  if (c->closed.load(std::memory_order_relaxed)) {
    if (c->qcount == 0) {
      c->lock.unlock();
      return {true, false};
    }
    // Closed with data still buffered: fall through to take it.
  } else if (Sudog* sg = c->sendq.dequeue()) {
    chan_recv_locked(c, sg, ep, [c]() GORO_NO_TSA { c->lock.unlock(); });
    return {true, true};
  }
  if (c->qcount > 0) {
    chan_bufrecv_locked(c, ep);
    c->lock.unlock();
    return {true, true};
  }
  if (!block) {
    c->lock.unlock();
    return {false, false};
  }
  G* gp = getg();
  if (!gp) throw_("chanrecv: called outside a goroutine");
  Sudog mysg;
  mysg.g = gp;
  mysg.elem = ep;
  mysg.c = c;
  gp->waiting = &mysg;
  gp->param = nullptr;
  c->recvq.enqueue(&mysg);
  gopark(chanparkcommit, c, "chan receive");
  gp = getg();
  gp->waiting = nullptr;
  gp->param = nullptr;
  return {true, mysg.success};
}

void closechan(hchan* c) {
  if (c == nullptr) goro::panic("close of nil channel");
  NoPreempt np;
  c->lock.lock();
  if (c->closed.load(std::memory_order_relaxed)) {
    c->lock.unlock();
    goro::panic("close of closed channel");
  }
  c->closed.store(true, std::memory_order_release);
  G* glist = nullptr;
  // Release all readers: they get "closed" (nothing constructed).
  while (Sudog* sg = c->recvq.dequeue()) {
    sg->success = false;
    sg->g->param = sg;
    sg->g->schedlink = glist;
    glist = sg->g;
  }
  // Release all writers: they will panic.
  while (Sudog* sg = c->sendq.dequeue()) {
    sg->success = false;
    sg->g->param = sg;
    sg->g->schedlink = glist;
    glist = sg->g;
  }
  c->lock.unlock();
  // Ready all Gs now that we've dropped the channel lock.
  while (glist) {
    G* gp = glist;
    glist = glist->schedlink;
    gp->schedlink = nullptr;
    goready(gp);
  }
}

std::size_t chanlen(const hchan* c) noexcept { return c ? __atomic_load_n(&c->qcount, __ATOMIC_RELAXED) : 0; }
std::size_t chancap(const hchan* c) noexcept { return c ? c->dataqsiz : 0; }

}  // namespace goro::detail
