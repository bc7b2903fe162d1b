// SPDX-License-Identifier: BSD-3-Clause
// Asynchronous preemption: a goroutine that loops without reaching a safe
// point (a channel operation, go, gosched, a lock...) still gives up its P.
//
// When may a goroutine be switched out from a signal? sysmon marks a G that
// has run for 10 ms on one time slice (retake) and sends its thread SIGURG,
// as Go does. The handler preempts only when all of these hold:
//   - the thread is an M running that very G (not g0, not sysmon, not a
//     thread foreign to the runtime), the G is _Grunning and has a P;
//   - the G is not inside the runtime: every runtime entry point that runs
//     on a goroutine holds a NoPreempt guard, and no runtime Lock is held
//     by the thread (a per-thread count kept by Lock itself);
//   - the interrupted instruction lies in the main executable's code — not
//     in libc, libstdc++, the dynamic loader, the vDSO or any other shared
//     object (malloc's locks, stdio's locks, ... are never held by a
//     preempted goroutine);
//   - its stack has room for the register save area.
// Otherwise the signal is ignored and sysmon tries again on its next pass.
//
// How: the handler edits the interrupted context so that, on return from
// the signal, the goroutine "calls" goro_async_preempt (preempt_x86_64.S),
// which saves every register and the extended state and calls
// goro_async_preempt2 below: an ordinary function on the goroutine's stack,
// outside signal context, that yields like gosched.
//
// Which code is protected: a preempted goroutine resumes on the SAME
// thread (it is wired to its M for the duration, with Go's internal
// lockOSThread count), because the interrupted C++ code may hold thread
// affine state: a thread_local's address cached in a register, a pthread
// mutex (owned by thread id), errno. Meanwhile its P goes to another M, so
// the other goroutines run. What is not protected: a goroutine that holds
// an OS-level lock (std::mutex, pthread locks) in its own code can be
// preempted while holding it; another goroutine that then blocks on that
// lock blocks its thread and P until the holder is rescheduled — use
// goro::Mutex between goroutines.
//
// Under ThreadSanitizer (which defers signals to its own safe points) async
// preemption is off; GORO_DEBUG=asyncpreemptoff=1 turns it off anywhere.
#include <cpuid.h>
#include <link.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>

#include "runtime.h"

extern "C" void goro_async_preempt();
extern "C" void goro_async_preempt2();
extern "C" {
// Bytes of xsave area (0: use fxsave). Read by preempt_x86_64.S.
std::uint64_t goro_xsave_size = 0;
}

namespace goro::detail {

std::atomic<bool> async_preempt_enabled{false};

namespace {
struct Range {
  std::uintptr_t lo, hi;
};
Range exe_text[16];
int nexe_text = 0;
struct sigaction old_sigurg;

[[maybe_unused]] int collect_main_text(dl_phdr_info* info, std::size_t, void*) {
  // The first object reported is the main program.
  for (int i = 0; i < info->dlpi_phnum && nexe_text < 16; i++) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
      std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
      exe_text[nexe_text++] = Range{lo, lo + ph.p_memsz};
    }
  }
  return 1;  // stop after the main program
}

bool in_main_text(std::uintptr_t pc) {
  for (int i = 0; i < nexe_text; i++) {
    if (pc >= exe_text[i].lo && pc < exe_text[i].hi) return true;
  }
  return false;
}

void chain(int sig, siginfo_t* info, void* uc) {
  if (old_sigurg.sa_flags & SA_SIGINFO) {
    if (old_sigurg.sa_sigaction) old_sigurg.sa_sigaction(sig, info, uc);
  } else if (old_sigurg.sa_handler != SIG_DFL && old_sigurg.sa_handler != SIG_IGN && old_sigurg.sa_handler) {
    old_sigurg.sa_handler(sig);
  }
}

[[maybe_unused]] void sigurg(int sig, siginfo_t* info, void* ucv) {
  int saved_errno = errno;
  M* mp = m_of_thread();
  G* gp = g_of_thread();
  bool ours = mp != nullptr;
  if (mp) mp->signalPending.store(false, std::memory_order_relaxed);
  if (mp && gp && gp == mp->curg && gp->preempt.load(std::memory_order_relaxed) &&
      gp->nopreempt.load(std::memory_order_relaxed) == 0 && locks_held_by_thread() == 0 && mp->p &&
      gp->atomicstatus.load(std::memory_order_relaxed) == _Grunning) {
    auto* uc = static_cast<ucontext_t*>(ucv);
    auto pc = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
    auto sp = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
    std::uintptr_t need = 128 + 8 + 16 * 8 + goro_xsave_size + 512 + 64 + 8192;
    if (in_main_text(pc) && sp > gp->stack.lo + need && sp <= gp->stack.hi) {
      sp -= 128;  // skip the red zone
      sp -= 8;
      *reinterpret_cast<std::uintptr_t*>(sp) = pc;
      uc->uc_mcontext.gregs[REG_RSP] = static_cast<greg_t>(sp);
      uc->uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(reinterpret_cast<std::uintptr_t>(&goro_async_preempt));
    }
  }
  if (!ours) chain(sig, info, ucv);
  errno = saved_errno;
}
}  // namespace

void preempt_init() {
#if defined(GORO_TSAN)
  return;
#else
  if (debug.asyncpreemptoff) return;
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27))) {  // OSXSAVE
    if (__get_cpuid_count(0xd, 0, &a, &b, &c, &d) && b >= 576) goro_xsave_size = b;
  }
  dl_iterate_phdr(collect_main_text, nullptr);
  if (nexe_text == 0) return;
  struct sigaction sa {};
  sa.sa_sigaction = sigurg;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGURG, &sa, &old_sigurg) != 0) return;
  async_preempt_enabled.store(true);
#endif
}

void preempt_m(M* mp) {
  if (!async_preempt_enabled.load(std::memory_order_relaxed) || mp->tid == 0) return;
  if (mp->signalPending.exchange(true, std::memory_order_relaxed)) return;
  ::syscall(SYS_tgkill, getpid(), mp->tid, SIGURG);
}

}  // namespace goro::detail

// Called (through goro_async_preempt) on the preempted goroutine's stack.
extern "C" void goro_async_preempt2() {
  using namespace goro::detail;
  // Wire the G to this thread while it is switched out: it resumes here.
  M* mp = getm();
  mp->lockedInt++;
  lock_os_thread_internal();
  gosched_preempted();
  mp = getm();  // the same M, by the wiring above
  mp->lockedInt--;
  unlock_os_thread_internal();
}
