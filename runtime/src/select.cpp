// SPDX-License-Identifier: BSD-3-Clause
// Derived from Go's source: Copyright 2009 The Go Authors; see LICENSES/BSD-3-Clause-Go.txt.
// select, after Go's select.go.
//
// selectgo implements the select statement over ncases cases (sends and
// receives; a default case is the caller's business: block=false).
//   1. Poll order: a uniformly random permutation of the cases, so that
//      among several ready cases each is taken with equal probability.
//   2. Lock order: the cases' channels sorted by address; each distinct
//      channel is locked once. Every select locks in the same global order,
//      so two selects over the same channels cannot deadlock each other.
//   3. Pass 1: in poll order, look for a case that can proceed now.
//   4. Pass 2: none can (and block): enqueue a sudog on every channel, in
//      lock order, and park. The first communication to reach one of them
//      wins: WaitQ::dequeue claims the G with a CAS on g->selectDone.
//   5. Pass 3: woken, relock everything, dequeue the losing sudogs, report
//      which case won.
#include <algorithm>

#include "chan.h"

namespace goro::detail {

namespace {

// Locks a variable set of channels: beyond what the analysis can express.
void sellock(SelectCase* cases, const std::uint16_t* lockorder, int n) GORO_NO_TSA {
  hchan* last = nullptr;
  for (int i = 0; i < n; i++) {
    hchan* c = cases[lockorder[i]].c;
    if (c != last) {
      last = c;
      c->lock.lock();
    }
  }
}

void selunlock(SelectCase* cases, const std::uint16_t* lockorder, int n) GORO_NO_TSA {
  // Unlock in reverse order; a channel appearing several times in a row is
  // unlocked once, at its last (first in lock order) appearance.
  for (int i = n - 1; i >= 0; i--) {
    hchan* c = cases[lockorder[i]].c;
    if (i > 0 && c == cases[lockorder[i - 1]].c) continue;
    c->lock.unlock();
  }
}

struct ParkArg {
  SelectCase* cases;
  const std::uint16_t* lockorder;
  int n;
};

bool selparkcommit(G*, void* arg) {
  auto* a = static_cast<ParkArg*>(arg);
  selunlock(a->cases, a->lockorder, a->n);
  return true;
}

}  // namespace

SelectResult selectgo(SelectCase* cases, int ncases, bool block) {
  NoPreempt np;
  checkpreempt();
  if (ncases > 65535) goro::panic("select: too many cases");
  if (ncases == 0) {
    if (!block) return {-1, false};
    // select {} with no cases: block forever.
    gopark(nullptr, nullptr, "select (no cases)");
    throw_("unreachable");
  }
  // Small selects keep their orders on the stack. Large ones need a third
  // array: the positions sorted into lock order (below).
  std::uint16_t orderbuf[2 * 16];
  std::uint16_t* heapbuf = nullptr;
  std::uint16_t* pollorder = orderbuf;
  if (ncases > 16) {
    heapbuf = new std::uint16_t[3 * static_cast<std::size_t>(ncases)];
    pollorder = heapbuf;
  }
  std::uint16_t* lockorder = pollorder + ncases;

  // Random permutation (inside-out Fisher-Yates) of the cases on non-nil
  // channels: a case on a nil channel is never ready, so it takes no part
  // (Go's select.go omits it the same way). norder of them remain.
  int norder = 0;
  for (int i = 0; i < ncases; i++) {
    if (cases[i].c == nullptr) continue;
    std::uint32_t j = fastrandn(static_cast<std::uint32_t>(norder + 1));
    pollorder[norder] = pollorder[j];
    pollorder[j] = static_cast<std::uint16_t>(i);
    norder++;
  }
  if (norder == 0) {
    // Only nil channels: like select {} (or the default case).
    delete[] heapbuf;
    if (!block) return {-1, false};
    gopark(nullptr, nullptr, "select (no cases)");
    throw_("unreachable");
  }
  // From here on only the norder live cases count (the Sudogs are still
  // indexed by case number: ntotal of them).
  const int ntotal = ncases;
  ncases = norder;
  // Lock order: by channel address, stable with respect to the poll order,
  // so that cases on the same channel keep their random relative order:
  // they are enqueued in lock order, and which of them a partner finds
  // first must be random too (Go's TestPseudoRandomSend).
  auto key = [&](std::uint16_t k) { return reinterpret_cast<std::uintptr_t>(cases[k].c); };
  if (ncases <= 32) {
    for (int i = 0; i < ncases; i++) lockorder[i] = pollorder[i];
    for (int i = 1; i < ncases; i++) {  // insertion sort: stable, no allocation
      std::uint16_t v = lockorder[i];
      int j = i - 1;
      while (j >= 0 && key(lockorder[j]) > key(v)) {
        lockorder[j + 1] = lockorder[j];
        j--;
      }
      lockorder[j + 1] = v;
    }
  } else {
    // Sort poll positions by (address, position): stable by construction,
    // without std::stable_sort's temporary buffer.
    std::uint16_t* pos = lockorder + ncases;
    for (int i = 0; i < ncases; i++) pos[i] = static_cast<std::uint16_t>(i);
    std::sort(pos, pos + ncases, [&](std::uint16_t a, std::uint16_t b) {
      auto ka = key(pollorder[a]), kb = key(pollorder[b]);
      return ka < kb || (ka == kb && a < b);
    });
    for (int i = 0; i < ncases; i++) lockorder[i] = pollorder[pos[i]];
  }

  sellock(cases, lockorder, ncases);

  SelectResult res{-1, false};
  // Pass 1: look for something already waiting.
  for (int i = 0; i < ncases; i++) {
    int casi = pollorder[i];
    SelectCase& cas = cases[casi];
    hchan* c = cas.c;
    if (!cas.is_send) {
      if (Sudog* sg = c->sendq.dequeue()) {
        // A sender waits: take its value (and unlock everything).
        res = {casi, true};
        chan_recv_locked(c, sg, cas.elem, [&] { selunlock(cases, lockorder, ncases); });
        goto done;
      }
      if (c->qcount > 0) {
        chan_bufrecv_locked(c, cas.elem);
        selunlock(cases, lockorder, ncases);
        res = {casi, true};
        goto done;
      }
      if (c->closed.load(std::memory_order_relaxed)) {
        selunlock(cases, lockorder, ncases);
        res = {casi, false};
        goto done;
      }
    } else {
      if (c->closed.load(std::memory_order_relaxed)) {
        selunlock(cases, lockorder, ncases);
        goro::panic("send on closed channel");
      }
      if (Sudog* sg = c->recvq.dequeue()) {
        res = {casi, false};
        chan_send_locked(c, sg, cas.elem, [&] { selunlock(cases, lockorder, ncases); });
        goto done;
      }
      if (c->qcount < c->dataqsiz) {
        chan_bufsend_locked(c, cas.elem);
        selunlock(cases, lockorder, ncases);
        res = {casi, false};
        goto done;
      }
    }
  }

  if (!block) {
    selunlock(cases, lockorder, ncases);
    goto done;
  }

  {
    // Pass 2: enqueue on every channel, in lock order.
    G* gp = getg();
    if (!gp) throw_("select: called outside a goroutine");
    Sudog sgbuf[16];
    Sudog* sgs = ntotal <= 16 ? sgbuf : new Sudog[static_cast<std::size_t>(ntotal)];
    gp->param = nullptr;
    gp->selectDone.store(0, std::memory_order_relaxed);
    for (int i = 0; i < ncases; i++) {
      int casi = lockorder[i];
      Sudog* sg = &sgs[casi];
      sg->g = gp;
      sg->isSelect = true;
      sg->elem = cases[casi].elem;
      sg->c = cases[casi].c;
      sg->success = false;
      if (cases[casi].is_send) sg->c->sendq.enqueue(sg);
      else sg->c->recvq.enqueue(sg);
    }
    ParkArg pa{cases, lockorder, ncases};
    gopark(selparkcommit, &pa, "select");
    gp = getg();

    // Pass 3: dequeue from the unsuccessful channels.
    sellock(cases, lockorder, ncases);
    gp->selectDone.store(0, std::memory_order_relaxed);
    auto* won = static_cast<Sudog*>(gp->param);
    gp->param = nullptr;
    int casi = -1;
    for (int i = 0; i < ncases; i++) {
      int k = lockorder[i];
      Sudog* sg = &sgs[k];
      if (sg == won) {
        casi = k;
        continue;
      }
      if (cases[k].is_send) sg->c->sendq.remove(sg);
      else sg->c->recvq.remove(sg);
    }
    if (casi < 0) throw_("selectgo: bad wakeup");
    bool success = won->success;
    if (sgs != sgbuf) delete[] sgs;
    selunlock(cases, lockorder, ncases);
    if (cases[casi].is_send) {
      if (!success) goro::panic("send on closed channel");
      res = {casi, false};
    } else {
      res = {casi, success};
    }
  }

done:
  delete[] heapbuf;
  return res;
}

}  // namespace goro::detail
