// SPDX-License-Identifier: BSD-3-Clause
// Channel internals shared by chan.cpp and (later) select.cpp.
#pragma once

#include "runtime.h"

namespace goro::detail {

// Sudog: a G waiting on a channel (or, in select, one of several). It lives
// in the waiting G's own frame, which cannot go away while the G is parked.
struct Sudog {
  G* g = nullptr;
  Sudog* next = nullptr;
  Sudog* prev = nullptr;
  void* elem = nullptr;  // value to send, or storage to receive into
  hchan* c = nullptr;
  bool isSelect = false;
  bool success = false;  // true: completed by a communication; false: closed
};

struct WaitQ {
  Sudog* first = nullptr;
  Sudog* last = nullptr;
  void enqueue(Sudog* sg);
  Sudog* dequeue();
  void remove(Sudog* sg);
};

struct hchan {
  std::atomic<std::uint32_t> refs{1};
  std::size_t qcount = 0;    // values in the buffer (read racily by len())
  std::size_t dataqsiz = 0;  // capacity
  unsigned char* buf = nullptr;
  const ElemOps* ops = nullptr;
  std::atomic<bool> closed{false};
  std::size_t sendx = 0;
  std::size_t recvx = 0;
  WaitQ recvq;
  WaitQ sendq;
  Lock lock{LockRank::hchan};  // guards everything above except refs, ops, dataqsiz, buf

  void* slot(std::size_t i) const { return buf + i * ops->size; }
  bool full() const {
    if (dataqsiz == 0) return __atomic_load_n(&recvq.first, __ATOMIC_RELAXED) == nullptr;
    return __atomic_load_n(&qcount, __ATOMIC_RELAXED) == dataqsiz;
  }
  bool empty() const {
    if (dataqsiz == 0) return __atomic_load_n(&sendq.first, __ATOMIC_RELAXED) == nullptr;
    return __atomic_load_n(&qcount, __ATOMIC_RELAXED) == 0;
  }
};

// The four ways a channel operation completes, with c.lock held on entry.
// The two hand-offs to a parked partner take `unlock` to release every lock
// the caller holds (one channel, or all of a select's) before readying the
// partner.

// Send ep's value straight to the parked receiver sg.
template <typename Unlock>
void chan_send_locked(hchan* c, Sudog* sg, void* ep, Unlock unlock) {
  if (sg->elem) c->ops->move_construct(sg->elem, ep);
  G* gp = sg->g;
  sg->success = true;
  gp->param = sg;
  unlock();
  goready(gp);
}

// Receive from the parked sender sg: for an unbuffered channel straight
// from the sender; for a full buffered one, take the head of the buffer and
// put the sender's value at the tail (the same slot: the ring is full).
template <typename Unlock>
void chan_recv_locked(hchan* c, Sudog* sg, void* ep, Unlock unlock) {
  if (c->dataqsiz == 0) {
    if (ep) c->ops->move_construct(ep, sg->elem);
  } else {
    void* qp = c->slot(c->recvx);
    if (ep) c->ops->move_construct(ep, qp);
    c->ops->destroy(qp);
    c->ops->move_construct(qp, sg->elem);
    if (++c->recvx == c->dataqsiz) c->recvx = 0;
    c->sendx = c->recvx;
  }
  G* gp = sg->g;
  sg->success = true;
  gp->param = sg;
  unlock();
  goready(gp);
}

// Buffer operations (room / data known to be there); they do not unlock.
void chan_bufsend_locked(hchan* c, void* ep);
void chan_bufrecv_locked(hchan* c, void* ep);

}  // namespace goro::detail
