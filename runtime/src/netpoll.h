// The network poller: epoll, with an eventfd to break a blocking poll.
//
// This is the part of Go's netpoll the scheduler itself needs: an M with
// nothing to do blocks in netpoll(-1) (findRunnable's last resort) and
// sysmon polls when nobody has for 10 ms; Gs waiting for an fd count as
// "netpoll waiters". The socket API on top of it comes with the blocking
// operations issue.
#pragma once

#include <cstdint>

#include "runtime.h"

namespace goro::detail {

void netpoll_init();
bool netpoll_inited();
bool netpoll_anywaiters();
// netpoll returns a list (linked by schedlink) of Gs made ready, in
// _Gwaiting. delay < 0 blocks until something is ready or netpoll_break,
// 0 does not block, > 0 blocks for up to delay ns.
G* netpoll(std::int64_t delay);
void netpoll_break();

// netpoll_wait_readable parks the current G until fd is readable (or has
// hung up). fd should be non-blocking.
void netpoll_wait_readable(int fd);

void injectglist(G* head);

}  // namespace goro::detail
