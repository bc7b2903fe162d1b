// SPDX-License-Identifier: BSD-3-Clause
// Goroutine stacks.
//
// A G's stack is an anonymous mapping, committed lazily by the kernel page
// by page, with a PROT_NONE guard page below it so that an overflow faults
// instead of silently corrupting a neighbour. The G struct itself lives at
// the top of the mapping: one allocation per G, and the page holding it is
// the page the G's first frames touch anyway.
//
// Guard pages cost one extra kernel VMA per stack, and vm.max_map_count
// (65530 by default) caps the VMAs of a process. A program with a million
// live goroutines would hit it, so guard pages are given to the first
// stacks only, up to a quarter of the map-count budget; stacks beyond that
// come from slabs of many stacks in one mapping, without guard pages. An
// unguarded stack carries a canary word at its lowest address that the
// scheduler checks whenever its G switches out ("goroutine stack
// overflow"), so its overflow is still reported — after the fact rather
// than at the faulting instruction. (Guarded stacks skip the canary: it
// would cost a second resident page per G.)
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "runtime.h"

#if defined(GORO_ASAN)
#include <sanitizer/lsan_interface.h>
#endif

extern "C" void goro_ctx_trampoline();

namespace goro::detail {

namespace {
constexpr std::size_t kPage = 4096;
constexpr std::size_t kSlabStacks = 256;

Lock stacklock{LockRank::stack};
std::size_t guarded_budget = 0;  // how many more guarded stacks we may map
bool budget_init = false;
constexpr std::size_t kGuardedBatch = 32;
char* guarded_cur = nullptr;     // current batch of guarded stacks
std::size_t guarded_left = 0;
std::size_t guarded_size = 0;
char* slab_cur = nullptr;        // current slab for unguarded stacks
std::size_t slab_left = 0;

std::size_t read_max_map_count() {
  FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r");
  long v = 65530;
  if (f) {
    if (std::fscanf(f, "%ld", &v) != 1) v = 65530;
    std::fclose(f);
  }
  return static_cast<std::size_t>(v);
}

// A batch of stacks is one mapping of 2 MiB or more: with transparent huge
// pages set to "always" (the default of many distributions' kernels, e.g.
// Debian's 7.x) the first fault in it would commit a whole 2 MiB page for a
// G that touches 4 KiB, 64 KiB per G instead of one page: skynet 30000 was
// OOM-killed at 1.9 GB in a 2 GB VM. Stacks grow a page at a time, as they
// should; failing to say so is harmless.
void no_huge_pages(void* p, std::size_t len) { (void)madvise(p, len, MADV_NOHUGEPAGE); }

[[noreturn]] void out_of_memory() { throw_("runtime: cannot allocate goroutine stack (mmap failed)"); }
}  // namespace

std::size_t stack_size_default() {
  std::size_t kb = debug.stacksize_kb > 0 ? static_cast<std::size_t>(debug.stacksize_kb) : 256;
  std::size_t sz = kb * 1024;
  sz = (sz + kPage - 1) & ~(kPage - 1);
  if (sz < 4 * kPage) sz = 4 * kPage;
  return sz;
}

StackRegion stackalloc(std::size_t size) {
  stacklock.lock();
  if (!budget_init) {
    guarded_budget = read_max_map_count() / 4;
    budget_init = true;
  }
  bool guarded = guarded_budget > 0;
  if (guarded) guarded_budget--;
  StackRegion r{};
  if (guarded) {
    // Guarded stacks are mapped kGuardedBatch at a time (one mmap) and
    // their guard pages made PROT_NONE one by one, as they are handed out.
    std::size_t total = size + kPage;
    if (guarded_left == 0 || guarded_size != total) {
      std::size_t n = kGuardedBatch;
      if (n > guarded_budget + 1) n = guarded_budget + 1;
      void* p = mmap(nullptr, total * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) {
        stacklock.unlock();
        out_of_memory();
      }
      no_huge_pages(p, total * n);
      guarded_cur = static_cast<char*>(p);
      guarded_left = n;
      guarded_size = total;
    }
    void* p = guarded_cur;
    guarded_cur += total;
    guarded_left--;
    stacklock.unlock();
    if (mprotect(p, kPage, PROT_NONE) != 0) out_of_memory();
    r = StackRegion{p, total, true};
  } else {
    if (slab_left == 0) {
      void* p = mmap(nullptr, size * kSlabStacks, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) {
        stacklock.unlock();
        out_of_memory();
      }
      no_huge_pages(p, size * kSlabStacks);
      slab_cur = static_cast<char*>(p);
      slab_left = kSlabStacks;
    }
    r = StackRegion{slab_cur, size, false};
    slab_cur += size;
    slab_left--;
    stacklock.unlock();
  }
#if defined(GORO_ASAN)
  // Let LeakSanitizer see pointers held only by parked goroutines' frames.
  __lsan_register_root_region(r.base, r.size);
#endif
  return r;
}

// The frame a fresh context starts from; goro_ctx_switch pops it. From low
// to high address: MXCSR + x87 control word, r15, r14, r13, r12, rbx, rbp,
// return address.
void* ctx_make(std::uintptr_t top, void (*entry)(void*), void* arg) {
  top &= ~static_cast<std::uintptr_t>(15);
  auto* sp = reinterpret_cast<std::uint64_t*>(top);
  // The return address sits at top-8, so after `ret` the trampoline starts
  // with rsp 16-byte aligned, as its `call` requires.
  *--sp = reinterpret_cast<std::uint64_t>(&goro_ctx_trampoline);
  *--sp = 0;                                          // rbp
  *--sp = 0;                                          // rbx
  *--sp = reinterpret_cast<std::uint64_t>(entry);     // r12
  *--sp = reinterpret_cast<std::uint64_t>(arg);       // r13
  *--sp = 0;                                          // r14
  *--sp = 0;                                          // r15
  std::uint32_t mxcsr = 0x1f80;
  std::uint16_t fcw = 0x037f;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fcw));
  *--sp = static_cast<std::uint64_t>(mxcsr) | (static_cast<std::uint64_t>(fcw) << 32);
  return sp;
}

}  // namespace goro::detail
