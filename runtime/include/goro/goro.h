// SPDX-License-Identifier: BSD-3-Clause
// goro: Go's G/M/P scheduler as a C++ runtime.
//
// This header is the whole public API. A program calls goro::run(main) once
// from its own main(); inside, goro::go spawns goroutines (Gs) that run on
// OS threads (Ms) through processors (Ps), exactly GORO_MAXPROCS of which run
// goroutine code at any moment. Blocking operations (channels, WaitGroup,
// Mutex) park the G, never the thread.
//
// Environment:
//   GORO_MAXPROCS=N   number of Ps (default: CPUs available to the process)
//   GORO_DEBUG=k=v,.. schedtrace=MS, scheddetail=1, ... (see README)
//
// Misuse panics with Go's message and exits with status 2, as Go does.
#pragma once

#include "goro/version.h"  // GORO_VERSION_MAJOR, _MINOR, _PATCH, _STRING

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <ratio>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace goro {

// panic prints "panic: <msg>" and the panicking goroutine to stderr and
// exits the process with status 2.
[[noreturn]] void panic(std::string_view msg);

namespace detail {

struct G;
struct hchan;

// A goroutine's entry: `fn(closure)` runs it, `destroy(closure)` ends the
// closure's lifetime. The closure lives at the top of the G's own stack, so
// spawning a G costs no heap allocation.
using ClosureFn = void (*)(void*);

// newproc_alloc returns a fresh G whose stack has room for `size` bytes of
// closure at `*closure` (aligned to `align`); newproc_start makes it runnable.
G* newproc_alloc(std::size_t size, std::size_t align, void** closure);
void newproc_start(G* gp, ClosureFn fn, ClosureFn destroy);

int run_main(ClosureFn fn, void* closure);

// Element operations of a channel: how to move a T into uninitialised
// storage and how to end a T's lifetime.
struct ElemOps {
  std::size_t size;
  std::size_t align;
  void (*move_construct)(void* dst, void* src);
  void (*destroy)(void* p);
};

template <typename T>
inline constexpr ElemOps elem_ops_for{
    sizeof(T), alignof(T),
    [](void* dst, void* src) { ::new (dst) T(std::move(*static_cast<T*>(src))); },
    [](void* p) { static_cast<T*>(p)->~T(); }};

hchan* makechan(const ElemOps* ops, std::size_t cap);
void chan_retain(hchan* c) noexcept;
void chan_release(hchan* c) noexcept;
// chansend moves *elem into the channel (blocking while block is true).
// Returns false only when !block and the send could not proceed.
bool chansend(hchan* c, void* elem, bool block);
// chanrecv moves a value into the uninitialised storage at elem (when elem is
// non-null). Returns {selected, received}: received is false when the channel
// is closed and drained (nothing was constructed at elem).
struct RecvResult {
  bool selected;
  bool received;
};
RecvResult chanrecv(hchan* c, void* elem, bool block);
void closechan(hchan* c);
std::size_t chanlen(const hchan* c) noexcept;
std::size_t chancap(const hchan* c) noexcept;

// select: one case of a select over channels (Go's scase).
struct SelectCase {
  hchan* c;
  void* elem;  // value to send, or uninitialised storage to receive into
  bool is_send;
};
struct SelectResult {
  int index;     // the case taken; -1: none (non-blocking select)
  bool recv_ok;  // for a receive: a value arrived (false: closed)
};
SelectResult selectgo(SelectCase* cases, int ncases, bool block);

// Semaphores in the style of Go's sync/runtime_Semacquire: park the G.
void semacquire(std::uint32_t* addr, bool lifo, int skipframes = 0);
void semrelease(std::uint32_t* addr, bool handoff);

// System call brackets (Go's entersyscall/exitsyscall).
bool entersyscall_if_g();
void exitsyscall();

}  // namespace detail

// run boots the runtime, runs `main` as the main goroutine and returns when
// it returns, with its value (0 when it returns void). As with Go's main,
// the program's work is over then: goroutines still alive are abandoned and
// never resumed. run may be called again after it has returned.
template <typename F>
int run(F main) {
  using R = std::invoke_result_t<F&>;
  static_assert(std::is_void_v<R> || std::is_convertible_v<R, int>,
                "goro::run: main must return void or int");
  struct Box {
    F fn;
    int result = 0;
  } box{std::move(main)};
  detail::run_main(
      [](void* p) {
        auto* b = static_cast<Box*>(p);
        if constexpr (std::is_void_v<R>) {
          b->fn();
        } else {
          b->result = static_cast<int>(b->fn());
        }
      },
      &box);
  return box.result;
}

// go starts a new goroutine running fn(). The callable is moved in.
template <typename F>
void go(F&& fn) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn&>, "goro::go: fn must be callable with no arguments");
  void* mem = nullptr;
  detail::G* gp = detail::newproc_alloc(sizeof(Fn), alignof(Fn), &mem);
  ::new (mem) Fn(std::forward<F>(fn));
  detail::newproc_start(
      gp, [](void* p) { (*static_cast<Fn*>(p))(); },
      [](void* p) { static_cast<Fn*>(p)->~Fn(); });
}

// gosched yields the processor, letting other goroutines run. The calling
// goroutine is put on the global run queue, as Go's runtime.Gosched does.
void gosched();

// maxprocs sets the number of Ps when n > 0 and returns the previous value.
// Changing it stops the world at the next safe point of every running G.
int maxprocs(int n = 0);

// num_goroutine returns the number of goroutines that currently exist.
int num_goroutine();

// Scheduling latency: how long goroutines waited runnable before they ran
// (Go's runtime/metrics "/sched/latencies:seconds"). As in Go, one in
// every kSchedLatencyPeriod scheduling stints of each goroutine is timed
// (from becoming runnable -- created, readied, preempted, yielding -- to
// running), so the cost is two clock reads per eight stints. Cumulative
// since the process started; subtract two reads to get an interval.
// Bucket b holds waits in [sched_latency_bucket_lower(b), next lower):
// four buckets per power of two of nanoseconds.
inline constexpr int kSchedLatencyPeriod = 8;
inline constexpr int kSchedLatencyBuckets = 4 * 40;
struct SchedLatencies {
  std::uint64_t count[kSchedLatencyBuckets] = {};
  std::uint64_t total() const;
  // The lower bound of the bucket holding quantile q (0..1) of the waits
  // counted in *this minus base (0 if none).
  std::int64_t quantile_ns(double q, const SchedLatencies* base = nullptr) const;
};
SchedLatencies sched_latencies();
std::int64_t sched_latency_bucket_lower(int bucket);

// lock_os_thread wires the calling goroutine to its current OS thread:
// it always runs on that thread, and no other goroutine does, until it
// has called unlock_os_thread as many times as lock_os_thread. If it
// exits while still locked, the thread ends. (Go's runtime.LockOSThread.)
void lock_os_thread();
void unlock_os_thread();

// BlockingRegion brackets code that may block its thread in the kernel or
// a library (a system call, a blocking read, a C library call), the way Go
// runs system calls: the goroutine keeps its P while the call is short;
// when it blocks, sysmon hands the P to another thread within a sysmon
// tick (20 µs–10 ms) so the other goroutines run on; on return the
// goroutine takes its P back, or another idle one, or queues and waits.
// Inside the region, no goro function may be called. Outside a goroutine
// it does nothing.
class BlockingRegion {
 public:
  BlockingRegion() : active_(detail::entersyscall_if_g()) {}
  ~BlockingRegion() {
    if (active_) detail::exitsyscall();
  }
  BlockingRegion(const BlockingRegion&) = delete;
  BlockingRegion& operator=(const BlockingRegion&) = delete;

 private:
  bool active_;
};

// syscall runs fn() inside a BlockingRegion and returns its result.
template <typename F>
decltype(auto) syscall(F&& fn) {
  BlockingRegion region;
  return std::forward<F>(fn)();
}

// Chan<T> is a copyable handle to a channel, like Go's `chan T`. A
// moved-from Chan is Go's nil channel: send and recv block forever, the
// try_ forms and a select never find it ready, close panics with "close of
// nil channel", len and cap are 0.
template <typename T>
class Chan {
 public:
  explicit Chan(std::size_t cap = 0) : c_(detail::makechan(&detail::elem_ops_for<T>, cap)) {}
  Chan(const Chan& o) noexcept : c_(o.c_) { detail::chan_retain(c_); }
  Chan(Chan&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  Chan& operator=(Chan o) noexcept {
    std::swap(c_, o.c_);
    return *this;
  }
  ~Chan() {
    if (c_) detail::chan_release(c_);
  }

  // send blocks until the value is delivered (or buffered); it panics with
  // "send on closed channel" when the channel is closed.
  void send(T v) { detail::chansend(c_, &v, true); }
  // try_send is a send with a default case: false when it would block.
  bool try_send(T v) { return detail::chansend(c_, &v, false); }

  // recv blocks until a value arrives; empty once closed and drained.
  std::optional<T> recv() {
    alignas(T) unsigned char buf[sizeof(T)];
    auto r = detail::chanrecv(c_, buf, true);
    return take(r, buf);
  }
  // try_recv is a receive with a default case: empty when it would block
  // (check closed-ness with recv() if needed).
  std::optional<T> try_recv() {
    alignas(T) unsigned char buf[sizeof(T)];
    auto r = detail::chanrecv(c_, buf, false);
    return take(r, buf);
  }

  // close panics with "close of closed channel" when already closed.
  void close() { detail::closechan(c_); }
  std::size_t len() const noexcept { return detail::chanlen(c_); }
  std::size_t cap() const noexcept { return detail::chancap(c_); }

  detail::hchan* raw() const noexcept { return c_; }
  friend bool operator==(const Chan& a, const Chan& b) noexcept { return a.c_ == b.c_; }

 private:
  static std::optional<T> take(detail::RecvResult r, unsigned char* buf) {
    if (!r.selected || !r.received) return std::nullopt;
    T* p = std::launder(reinterpret_cast<T*>(buf));
    std::optional<T> out(std::move(*p));
    p->~T();
    return out;
  }
  detail::hchan* c_;
};

// WaitGroup waits for a collection of goroutines to finish, like Go's
// sync.WaitGroup. A negative counter panics with Go's message.
class WaitGroup {
 public:
  void add(int delta);
  void done() { add(-1); }
  void wait();

 private:
  // High 32 bits: counter. Low 32 bits: waiter count.
  std::uint64_t state_ = 0;
  std::uint32_t sema_ = 0;
};

// Mutex is Go's sync.Mutex: parks goroutines, with normal and starvation
// modes. Usable with std::lock_guard / std::unique_lock.
class Mutex {
 public:
  void lock();
  void unlock();
  bool try_lock();

 private:
  void lock_slow();
  void unlock_slow(std::int32_t new_state);
  std::int32_t state_ = 0;
  std::uint32_t sema_ = 0;
};

// ---------------------------------------------------------------------------
// select
//
//   int i = goro::select(
//       goro::on_recv(results, [&](std::optional<int> v) { ... }),
//       goro::on_send(jobs, job, [&] { ... }),
//       goro::on_default([&] { ... }));
//
// Waits until one case can proceed and runs it, like Go's select: among
// several ready cases one is chosen uniformly at random; with on_default,
// never blocks. Returns the index of the case taken (among all arguments).
// A receive's callback gets std::optional<T>: empty when the channel is
// closed. A send on a closed channel panics. Callbacks are optional.
// ---------------------------------------------------------------------------
namespace detail {
struct NoCallback {
  template <typename... A>
  void operator()(A&&...) const {}
};

template <typename T, typename F>
struct RecvCase {
  hchan* c;
  F fn;
  alignas(T) unsigned char buf[sizeof(T)];
  SelectCase scase() { return SelectCase{c, buf, false}; }
  void fire(bool ok) {
    std::optional<T> v;
    if (ok) {
      T* p = std::launder(reinterpret_cast<T*>(buf));
      v.emplace(std::move(*p));
      p->~T();
    }
    if constexpr (std::is_invocable_v<F&, std::optional<T>>) fn(std::move(v));
    else fn();
  }
};

template <typename T, typename F>
struct SendCase {
  hchan* c;
  T v;
  F fn;
  SelectCase scase() { return SelectCase{c, &v, true}; }
  void fire(bool) { fn(); }
};

template <typename F>
struct DefaultCase {
  F fn;
  void fire(bool) { fn(); }
};

template <typename C>
inline constexpr bool is_default_case = false;
template <typename F>
inline constexpr bool is_default_case<DefaultCase<F>> = true;

template <typename Tuple, std::size_t... I>
int run_select(Tuple& cases, std::index_sequence<I...>) {
  constexpr std::size_t N = sizeof...(I);
  constexpr int ndefault = (0 + ... + (is_default_case<std::decay_t<std::tuple_element_t<I, Tuple>>> ? 1 : 0));
  static_assert(ndefault <= 1, "goro::select: at most one on_default case");
  SelectCase sc[N];
  int map[N] = {};
  int n = 0;
  int defidx = -1;
  auto add = [&](auto& cas, int i) {
    if constexpr (is_default_case<std::decay_t<decltype(cas)>>) {
      defidx = i;
    } else {
      sc[n] = cas.scase();
      map[n] = i;
      n++;
    }
  };
  (add(std::get<I>(cases), static_cast<int>(I)), ...);
  SelectResult r = selectgo(sc, n, ndefault == 0);
  int chosen = r.index < 0 ? defidx : map[r.index];
  ((static_cast<int>(I) == chosen ? std::get<I>(cases).fire(r.recv_ok) : void()), ...);
  return chosen;
}
}  // namespace detail

template <typename T, typename F = detail::NoCallback>
detail::RecvCase<T, F> on_recv(const Chan<T>& ch, F fn = F{}) {
  return detail::RecvCase<T, F>{ch.raw(), std::move(fn), {}};
}

template <typename T, typename U, typename F = detail::NoCallback>
detail::SendCase<T, F> on_send(const Chan<T>& ch, U&& v, F fn = F{}) {
  return detail::SendCase<T, F>{ch.raw(), T(std::forward<U>(v)), std::move(fn)};
}

template <typename F = detail::NoCallback>
detail::DefaultCase<F> on_default(F fn = F{}) {
  return detail::DefaultCase<F>{std::move(fn)};
}

template <typename... Cases>
int select(Cases&&... cases) {
  if constexpr (sizeof...(Cases) == 0) {
    detail::selectgo(nullptr, 0, true);  // select {}: blocks forever
    return -1;
  } else {
    std::tuple<Cases&...> refs(cases...);
    return detail::run_select(refs, std::index_sequence_for<Cases...>{});
  }
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------
using Clock = std::chrono::steady_clock;

// sleep_for parks the calling goroutine for at least d (Go's time.Sleep).
// Outside a goroutine it sleeps the calling thread. As in Go, a duration
// too long to represent as a time (nanotime() + d overflows) means "never".
void sleep_for(std::chrono::nanoseconds d);
template <typename Rep, typename Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  // Saturate instead of overflowing the conversion (hours::max() etc.).
  if constexpr (std::ratio_greater_v<Period, std::nano>) {
    using D = std::chrono::duration<Rep, Period>;
    if (d >= std::chrono::duration_cast<D>(std::chrono::nanoseconds::max())) {
      sleep_for(std::chrono::nanoseconds::max());
      return;
    }
  }
  sleep_for(std::chrono::duration_cast<std::chrono::nanoseconds>(d));
}

// after returns a channel that receives the current time once d has
// elapsed (Go's time.After); never, for a d too long to represent.
Chan<Clock::time_point> after(std::chrono::nanoseconds d);

namespace detail {
struct TimerImpl;
}

// Timer sends the current time on its channel once, after its duration
// (Go's time.Timer; a duration too long to represent never fires). stop and reset return whether the timer was active.
// Like Go's, reset should be called only on a stopped or expired timer
// whose channel has been drained.
class Timer {
 public:
  explicit Timer(std::chrono::nanoseconds d);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  Chan<Clock::time_point> chan() const;
  bool stop();
  bool reset(std::chrono::nanoseconds d);

 private:
  detail::TimerImpl* impl_;
};

}  // namespace goro

// The rest of the sync package (RWMutex, Once, Cond) and the network API.
#include "goro/sync.h"
