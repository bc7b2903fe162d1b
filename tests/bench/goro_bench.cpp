// SPDX-License-Identifier: BSD-3-Clause
// goro_bench: Google Benchmark microbenchmarks of the goro runtime.
//
// Every goro benchmark calls goro::run once per benchmark run and loops
// `state` inside the main goroutine. The main G may move between Ms, so
// times are wall-clock (UseRealTime) and CPU time is the process's.
//
// BM_FcontextJump is the floor for a user-level switch: a raw Boost.Context
// jump_fcontext round trip (there and back, two jumps), to compare with
// BM_GoschedOneG (one G on one P: G -> scheduler -> G).
#include <unistd.h>

#include <goro/goro.h>

#include <benchmark/benchmark.h>
#include <boost/context/detail/fcontext.hpp>

extern "C" void goro_ctx_switch(void** save_sp, void* load_sp);
namespace goro::detail {
void* ctx_make(std::uintptr_t top, void (*entry)(void*), void* arg);
}

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace {

namespace bctx = boost::context::detail;

// in_goro runs body() as the main goroutine with `procs` Ps (0: default),
// restoring the previous number of Ps afterwards.
template <typename F>
void in_goro(int procs, F body) {
  goro::run([&] {
    int prev = procs > 0 ? goro::maxprocs(procs) : 0;
    body();
    if (procs > 0) goro::maxprocs(prev);
  });
}

// ---- context switch floor: raw fcontext --------------------------------

void fctx_bounce(bctx::transfer_t t) {
  // Jump straight back to the caller, forever; the benchmark abandons this
  // context (its stack is freed by the caller) when it is done.
  for (;;) t = bctx::jump_fcontext(t.fctx, nullptr);
}

void BM_FcontextJump(benchmark::State& state) {
  constexpr std::size_t kStack = 64 * 1024;
  auto stack = std::make_unique<unsigned char[]>(kStack);
  bctx::fcontext_t ctx = bctx::make_fcontext(stack.get() + kStack, kStack, fctx_bounce);
  for (auto _ : state) {
    bctx::transfer_t t = bctx::jump_fcontext(ctx, nullptr);
    ctx = t.fctx;
  }
  state.counters["switches"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_FcontextJump);

// ---- the same round trip with goro's own switch (ctx_x86_64.S) -----------
void* raw_main_sp = nullptr;
void* raw_co_sp = nullptr;
void raw_bounce(void*) {
  for (;;) goro_ctx_switch(&raw_co_sp, raw_main_sp);
}

void BM_RawSwitch(benchmark::State& state) {
  constexpr std::size_t kStack = 64 * 1024;
  auto stack = std::make_unique<unsigned char[]>(kStack);
  raw_co_sp = goro::detail::ctx_make(reinterpret_cast<std::uintptr_t>(stack.get() + kStack), raw_bounce, nullptr);
  for (auto _ : state) goro_ctx_switch(&raw_main_sp, raw_co_sp);
  state.counters["switches"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RawSwitch);

// ---- gosched ------------------------------------------------------------

// One G alone on one P: each gosched goes through the global run queue and
// the scheduler and back to the same G.
void BM_GoschedOneG(benchmark::State& state) {
  in_goro(1, [&] {
    for (auto _ : state) goro::gosched();
  });
}
BENCHMARK(BM_GoschedOneG)->UseRealTime()->MeasureProcessCPUTime();

// ---- system call brackets -------------------------------------------------

// A short system call in a BlockingRegion (Go's entersyscall/exitsyscall
// around getppid): the bracket's cost over the call itself, which is where
// the M's state changes twice (SYSCALL and back) and, with the sched_ext
// export wanted, its word is mirrored even while no loader runs. Run it
// with GORO_DEBUG=scx=0 beside a plain run to see what the mirror costs.
void BM_SyscallBracket(benchmark::State& state) {
  in_goro(1, [&] {
    for (auto _ : state) benchmark::DoNotOptimize(goro::syscall([] { return getppid(); }));
  });
}
BENCHMARK(BM_SyscallBracket)->UseRealTime()->MeasureProcessCPUTime();

// Two Gs yielding to each other on one P (the main G and a partner that
// yields until told to stop): each iteration is one switch to the other G.
void BM_GoschedTwoG(benchmark::State& state) {
  in_goro(static_cast<int>(state.range(0)), [&] {
    std::atomic<bool> stop{false};
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
      while (!stop.load(std::memory_order_relaxed)) goro::gosched();
      wg.done();
    });
    for (auto _ : state) goro::gosched();
    stop.store(true, std::memory_order_relaxed);
    wg.wait();
  });
}
BENCHMARK(BM_GoschedTwoG)->Arg(1)->Arg(2)->ArgName("procs")->UseRealTime()->MeasureProcessCPUTime();

// ---- spawn + join ---------------------------------------------------------

// Each iteration spawns one G that calls wg.done(); the main G waits for
// each batch of 1024 so the number of live Gs stays bounded.
void BM_SpawnJoin(benchmark::State& state) {
  in_goro(static_cast<int>(state.range(0)), [&] {
    goro::WaitGroup wg;
    int pending = 0;
    for (auto _ : state) {
      wg.add(1);
      goro::go([&wg] { wg.done(); });
      if (++pending == 1024) {
        wg.wait();
        pending = 0;
      }
    }
    wg.wait();
  });
}
BENCHMARK(BM_SpawnJoin)->Arg(1)->Arg(2)->ArgName("procs")->UseRealTime()->MeasureProcessCPUTime();

// ---- channels -------------------------------------------------------------

// Unbuffered ping-pong over two channels: one round trip per iteration.
void BM_PingPong(benchmark::State& state) {
  in_goro(static_cast<int>(state.range(0)), [&] {
    goro::Chan<int> ping, pong;
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
      while (auto v = ping.recv()) pong.send(*v);
      wg.done();
    });
    for (auto _ : state) {
      ping.send(1);
      benchmark::DoNotOptimize(pong.recv());
    }
    ping.close();
    wg.wait();
  });
}
BENCHMARK(BM_PingPong)->Arg(1)->Arg(2)->ArgName("procs")->UseRealTime()->MeasureProcessCPUTime();

// Synchronous handoff on one unbuffered channel, both directions (in the
// spirit of Go's BenchmarkChanSync): per iteration the main G sends then
// receives, the partner receives then sends.
void BM_ChanSync(benchmark::State& state) {
  in_goro(static_cast<int>(state.range(0)), [&] {
    goro::Chan<int> c;
    goro::WaitGroup wg;
    wg.add(1);
    goro::go([&] {
      for (;;) {
        auto v = c.recv();
        if (!v || *v < 0) break;
        c.send(*v);
      }
      wg.done();
    });
    for (auto _ : state) {
      c.send(1);
      benchmark::DoNotOptimize(c.recv());
    }
    c.send(-1);
    wg.wait();
  });
}
BENCHMARK(BM_ChanSync)->Arg(1)->Arg(2)->ArgName("procs")->UseRealTime()->MeasureProcessCPUTime();

// Buffered producer/consumer: the main G sends one item per iteration into
// a channel of capacity range(1); a consumer G drains it.
void BM_ProdCons(benchmark::State& state) {
  in_goro(static_cast<int>(state.range(0)), [&] {
    goro::Chan<long> c(static_cast<std::size_t>(state.range(1)));
    goro::WaitGroup wg;
    long sum = 0;
    wg.add(1);
    goro::go([&] {
      while (auto v = c.recv()) sum += *v;
      wg.done();
    });
    for (auto _ : state) c.send(1);
    c.close();
    wg.wait();
    benchmark::DoNotOptimize(sum);
  });
}
BENCHMARK(BM_ProdCons)
    ->ArgsProduct({{1, 2}, {0, 10, 100}})
    ->ArgNames({"procs", "cap"})
    ->UseRealTime()
    ->MeasureProcessCPUTime();

// Uncontended buffered channel: the main G alone sends and receives.
void BM_ChanUncontended(benchmark::State& state) {
  in_goro(1, [&] {
    goro::Chan<int> c(100);
    for (auto _ : state) {
      for (int i = 0; i < 100; i++) c.send(i);
      for (int i = 0; i < 100; i++) benchmark::DoNotOptimize(c.recv());
    }
  });
}
BENCHMARK(BM_ChanUncontended)->UseRealTime()->MeasureProcessCPUTime();

// ---- select ------------------------------------------------------------------

// range(0) producer Gs (2 or 4), one per unbuffered channel, send forever;
// the main G selects over the channels once per iteration (in the spirit of
// Go's BenchmarkSelectSyncContended, with plain sends on the producer side).
void BM_SelectContended(benchmark::State& state) {
  const int k = static_cast<int>(state.range(0));
  in_goro(2, [&] {
    std::vector<goro::Chan<int>> cs;
    for (int i = 0; i < k; i++) cs.emplace_back(0);
    std::atomic<bool> stop{false};
    goro::WaitGroup wg;
    wg.add(k);
    for (int i = 0; i < k; i++) {
      goro::go([c = cs[static_cast<std::size_t>(i)], &stop, &wg]() mutable {
        while (!stop.load(std::memory_order_relaxed)) c.send(1);
        wg.done();
      });
    }
    long sum = 0;
    auto add = [&sum](std::optional<int> v) { sum += *v; };
    for (auto _ : state) {
      if (k == 2) {
        goro::select(goro::on_recv(cs[0], add), goro::on_recv(cs[1], add));
      } else {
        goro::select(goro::on_recv(cs[0], add), goro::on_recv(cs[1], add), goro::on_recv(cs[2], add),
                     goro::on_recv(cs[3], add));
      }
    }
    // Stop the producers: keep receiving until all of them have finished.
    stop.store(true, std::memory_order_relaxed);
    goro::Chan<int> fin(1);
    goro::go([&wg, fin]() mutable {
      wg.wait();
      fin.send(1);
    });
    for (bool done = false; !done;) {
      auto fire = [&] { done = true; };
      if (k == 2) {
        goro::select(goro::on_recv(fin, fire), goro::on_recv(cs[0]), goro::on_recv(cs[1]));
      } else {
        goro::select(goro::on_recv(fin, fire), goro::on_recv(cs[0]), goro::on_recv(cs[1]), goro::on_recv(cs[2]),
                     goro::on_recv(cs[3]));
      }
    }
    benchmark::DoNotOptimize(sum);
  });
}
BENCHMARK(BM_SelectContended)->Arg(2)->Arg(4)->ArgName("chans")->UseRealTime()->MeasureProcessCPUTime();

// Uncontended select (Go's BenchmarkSelectUncontended with one G): two
// channels of capacity 1 and one token passed between them.
void BM_SelectUncontended(benchmark::State& state) {
  in_goro(1, [&] {
    goro::Chan<int> a(1), b(1);
    a.send(0);
    for (auto _ : state) {
      goro::select(goro::on_recv(a, [&] { b.send(0); }), goro::on_recv(b, [&] { a.send(0); }));
    }
  });
}
BENCHMARK(BM_SelectUncontended)->UseRealTime()->MeasureProcessCPUTime();

// Non-blocking select on a channel that is never ready (select with default).
void BM_SelectNonblock(benchmark::State& state) {
  in_goro(1, [&] {
    goro::Chan<int> c;
    for (auto _ : state) goro::select(goro::on_recv(c), goro::on_default());
  });
}
BENCHMARK(BM_SelectNonblock)->UseRealTime()->MeasureProcessCPUTime();

// ---- skynet ---------------------------------------------------------------

void skynet_node(goro::Chan<long long> c, long long num, long long size) {
  if (size == 1) {
    c.send(num);
    return;
  }
  goro::Chan<long long> rc;
  for (long long i = 0; i < 10; i++) {
    long long sub = num + i * (size / 10);
    goro::go([rc, sub, size] { skynet_node(rc, sub, size / 10); });
  }
  long long sum = 0;
  for (int i = 0; i < 10; i++) sum += *rc.recv();
  c.send(sum);
}

// One whole skynet tree with range(0) leaves per iteration.
void BM_Skynet(benchmark::State& state) {
  const long long n = state.range(0);
  in_goro(0, [&] {
    for (auto _ : state) {
      goro::Chan<long long> c;
      goro::go([c, n] { skynet_node(c, 0, n); });
      long long s = *c.recv();
      if (s != n * (n - 1) / 2) state.SkipWithError("skynet: wrong sum");
    }
  });
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_Skynet)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();

}  // namespace

BENCHMARK_MAIN();
