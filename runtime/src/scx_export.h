// SPDX-License-Identifier: BSD-3-Clause
// The runtime export: what this process tells scx_goro about its Ms and Ps,
// and what scx_goro tells it back. The contract (layout, attach handshake,
// M word packing, the "P ownership in flight" protocol, the kernel view) is
// bpf/scx_goro.h, section "The runtime export (ABI 1)"; this file is the
// runtime's side of it.
//
// Attaching (scx_attach, from schedinit before any M exists): if a scx_goro
// loader runs, we ask it for our block over its Unix socket and mmap it;
// otherwise -- no loader, any error at all -- we run standalone, exactly as
// Go's runtime does, and sysmon attaches later if a loader appears (see
// "Attaching late"). GORO_DEBUG=scx=0 never attaches. Nothing after
// schedinit ever waits on the loader or the kernel: sysmon's later
// handshakes are non-blocking, spread over its loops.
//
// Publishing. Every publication site in the scheduler is one predictable
// branch on scx_export (null when standalone) guarding plain (atomic,
// relaxed or release) stores into the shared block: no system call, no
// lock. Who writes what:
//   - an M's word: the M itself, from its shadow fields in struct M (state,
//     held P, carried P, sched.lock held). The one exception is STARTING,
//     written by the M that hands it a P; see "Writing another M's word".
//   - a P's word: whoever changed the P (owner, status, run queue length;
//     a stealer writes its victim's length). Each store recomputes the
//     whole word from the P's own atomics, so the last writer's view wins:
//     a diagnostic, never a basis for a decision here.
//   - the counters: under sched.lock, with the seqcount (scx_pubcounters
//     in proc.cpp).
//
// Writing another M's word. The waker stores STARTING | P into a sleeping
// M's word, and that M must not overwrite it with a stale state of its own.
// So a waker writes only when the target cannot be writing:
//   - an M taken off the idle list (mget, under sched.lock): its last store
//     (IDLE, then dropping LOCKHELD) came before it released sched.lock in
//     stopm, and its next one comes after it is woken;
//   - a brand-new M (newm): its thread does not exist yet;
//   - a locked M (startlockedm): with a compare-and-swap from the exact
//     LOCKED word it published as its last store before sleeping. If it has
//     not got that far, the waker leaves the word alone (the M is awake and
//     runnable anyway, and takes the P as soon as it looks).
//
// Following a restarted loader. The loader keeps our connection open for as
// long as our slot is ours; when its instance ends (it exits, or the kernel
// asked it to restart), the connection hangs up. sysmon looks every 100 ms
// (a non-blocking peek) and, once it is gone, tries the handshake again
// every 500 ms -- a stat of the pin directory while no loader runs. The
// handshake is never waited for: the connect does not block (a full backlog
// is "try later"), and the welcome is looked for with a non-blocking receive
// on each sysmon loop until it arrives or a second has passed. The old
// block cannot be copied (the loader zeroes a block when its instance
// ends), so the export keeps its own copy of each record's tid, and each M
// of its last word (M::scxword). Under recordlock (no M record is born or freed meanwhile) the block
// pointer is swapped, then each record in use gets its tid and, unless the
// M has stored a newer word into the new block already (the store count in
// the word's upper half), its last word; hdr.abi then says "published", and
// sysmon republishes every P and the counters in the same loop. An M that loaded the old
// pointer just before the swap can store into the old block once more;
// that state shows in the new block at its next store. The old block stays
// mapped (a few KiB per restart): an M may still hold it. Partial mode is
// whatever the first loader said.
//
// Attaching late. A process started before the loader attaches when one
// appears: sysmon stats the pin directory at most once a second and then
// shakes hands as above (after a refusal it waits 5 s; a refusal that
// cannot change -- another ABI, another pid namespace -- ends the tries).
// That is the re-attach, from records kept all along: whenever the export
// is wanted (GORO_DEBUG scx on, the default), every M gets its record and
// keeps its word's mirror (M::scxword) and tid, attached or not -- a few
// stores per M state change, no lock, no system call. Because an M can
// mirror a word just as the block appears and not see it, sysmon copies
// the mirrors once more on its next loop. In partial mode sysmon switches
// the existing Ms to SCHED_EXT itself. Standalone, sysmon sleeps deeply
// when nothing runs, so an idle process attaches when it next has work.
//
// Liveness. sysmon refreshes hdr.heartbeat_ns every loop, and every counter
// publication refreshes it too. A block goes stale only when the runtime is
// frozen or gone.
//
// sysmon while attached. Standalone, as in Go, sysmon sleeps deeply when
// every P is idle (sysmonwait) and restarts its loop at 20 us each time a P
// starts. Attached, it never sleeps deeply: it stays in its <= 10 ms loop.
// Measured in the VM (contended paced service, 2 vCPUs, goro_scx_service
// --slow-ms): with the deep sleep, an attached server now and then did not
// see requests already in its sockets for 180-240 ms -- all connections at
// once, every goroutine in IO wait -- 4-14 times per 5 s run, and every P
// start woke sysmon into a burst of 20 us loops, each taking sched.lock to
// publish the counters. Awake, it polls the network every 10 ms whenever no
// M is blocked in it, and its loop stays at 10 ms. Five interleaved runs
// each: p99 36.0 -> 23.0 ms (EEVDF 52.5), p99.9 232 -> 53 ms, requests
// over 100 ms 4-14 -> 0-7 per run.
#pragma once

#include <cstdint>

#include "runtime.h"
#include "scx_goro.h"

namespace goro::detail {

// The mapped block, or null when standalone. Set in scx_attach, before the
// first M is created, and replaced only when sysmon follows a restarted
// loader (scx_watch); never null again once set. Every publication site
// loads it once (scx_x) and stores into that block.
extern std::atomic<goro_proc_export*> scx_export;
static inline goro_proc_export* scx_x() { return scx_export.load(std::memory_order_acquire); }
// hdr.flags had GORO_ATTACH_PARTIAL: every M switches itself to SCHED_EXT.
extern bool scx_partial;

static inline bool scx_on() { return __builtin_expect(scx_export.load(std::memory_order_relaxed) != nullptr, 0); }

// Whether M records are kept (the export is wanted: GORO_DEBUG scx on),
// attached or not; set once in scx_attach, before the first M.
extern bool scx_records;

// scx_attach: the handshake of scx_goro.h ("How a process gets its map").
// Any failure leaves scx_export null. Called once, from schedinit.
void scx_attach();

// scx_watch: sysmon, every loop. Notices that the loader hung up (it exited,
// or the kernel made it restart: CPU hotplug, an upgrade) and attaches to
// the next one when it appears, or to the first one if the process started
// before it: see "Following a restarted loader" and "Attaching late". True
// when it has just (re-)attached: the caller then republishes every P's word
// (sysmon, in proc.cpp, has the P table).
bool scx_watch(std::int64_t now);
// A handshake is under way (sysmon keeps its short loop until it ends).
bool scx_handshaking();
// Attached and the loader still there (sysmon only): while the loader is
// gone sysmon sleeps deeply again when nothing runs, as standalone, and
// looks for a new loader when it wakes (an idle process must not wake
// 100 times a second for a loader that may never come back).
bool scx_connected();

// M records (indices into m[]): reserved when an M is created, released
// when its thread ends. -1: more than GORO_MAX_M Ms, undescribed.
std::int32_t scx_mrecord_alloc(M* mp);
void scx_mrecord_free(M* mp, std::int32_t idx);

// The M's thread starts: store its tid, and switch to SCHED_EXT if the
// loader runs in partial mode. The M must have a record.
void scx_mthread_start(M* mp);
// The M's thread ends: the record becomes FREE and reusable.
void scx_mthread_exit(M* mp);

// The P's index in the block's P table, -1 for none (or beyond it).
static inline std::int32_t p_index(const P* pp) { return pp && pp->id < GORO_MAX_P ? pp->id : -1; }

// Publish mp's word from its shadow fields (only mp's own thread calls it).
void scx_mpub_slow(M* mp);
// Not attached: only the mirror, state and P, for a late attach to copy
// (store count 1: newer than a fresh block's 0, not newer than any store
// into the block). Inline, one store: every standalone process pays it at
// each M state change (BM_SyscallBracket, with GORO_DEBUG=scx=0 beside).
// Then a look for a block that appeared meanwhile (see put_word).
static inline void scx_mirror(M* mp) {
  mp->scxword.store(GORO_MW_MAKE(mp->scxstate, p_index(mp->p), 0) | (1ull << 32), std::memory_order_relaxed);
  if (scx_on()) scx_mpub_slow(mp);
}
static inline void scx_mpub(M* mp) {
  if (mp->scxidx < 0) return;
  if (scx_on()) scx_mpub_slow(mp);
  else scx_mirror(mp);
}
// Set mp's state (enum goro_m_state) and publish. mp's own thread only.
static inline void scx_mstate(M* mp, std::uint8_t state) {
  if (mp && mp->scxidx >= 0) {
    mp->scxstate = state;
    scx_mpub(mp);
  }
}
// RUNNING or SPINNING, whichever mp->spinning says.
static inline void scx_mrun(M* mp) {
  if (mp) scx_mstate(mp, mp->spinning ? GORO_M_SPINNING : GORO_M_RUNNING);
}

// sysmon is (no longer) putting Gs from the netpoller on the run queues: for
// the BPF side's stall check, work is on its way (GORO_MF_INJECTING).
static inline void scx_injecting(M* mp, bool on) {
  if (scx_on() && mp && mp->scxidx >= 0) {
    mp->scxinjecting = on;
    scx_mpub_slow(mp);
  }
}

// "P ownership in flight", step 1 and step 3: the calling M (self) holds pp
// for another M (CARRYING), and no longer does. self may be null (a thread
// that is not an M, e.g. goro::run's).
void scx_carry_slow(M* self, P* pp);
static inline void scx_carry(M* self, P* pp) {
  if (scx_on() && self && self->scxidx >= 0) scx_carry_slow(self, pp);
}
static inline void scx_uncarry(M* self) {
  if (scx_on() && self && self->scxcarry >= 0) scx_carry_slow(self, nullptr);
}
// Step 2: the target's word becomes STARTING | pp. For an M off the idle
// list or not started yet (see "Writing another M's word").
void scx_mstarting_slow(M* target, P* pp);
static inline void scx_mstarting(M* target, P* pp) {
  if (target->scxidx >= 0) scx_mstarting_slow(target, pp);
}
// Step 2 for a locked M: only if its word is still the LOCKED it parked with.
void scx_mstarting_locked_slow(M* target, P* pp);
static inline void scx_mstarting_locked(M* target, P* pp) {
  if (target->scxidx >= 0) scx_mstarting_locked_slow(target, pp);
}

// sched.lock taken or about to be released by the calling thread (the
// LOCKHELD flag of its M, if it has one). See SchedLock in runtime.h.
void scx_lockheld_slow(bool held);

// Publish pp's word (status, owner, run queue length) and runnext_goid.
void scx_ppub_slow(P* pp);
static inline void scx_ppub(P* pp) {
  if (scx_on()) scx_ppub_slow(pp);
}

// hdr.heartbeat_ns = now (CLOCK_MONOTONIC).
void scx_heartbeat(std::int64_t now);

// The counters' seqcount writer: begin makes seq odd, end even again.
// sched.lock must be held (the caller, scx_pubcounters in proc.cpp).
// x: the block, loaded once by the caller for the whole publication.
void scx_counters_begin(goro_proc_export* x);
void scx_counters_end(goro_proc_export* x);
// A 32/64-bit store into the shared block. Release, for the seqcount's
// sake (see scx_counters_begin): a plain move on x86 all the same.
static inline void scx_store32(__u32* p, std::uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void scx_store64(__u64* p, std::uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

// In-kernel checkdead: what the kernel view says about a
// deadlock verdict checkdead is about to give. self is the calling M (its
// own record is never evidence).
enum class ScxVerdict {
  kNoView,    // standalone, or the BPF side is not maintaining the view
  kSpurious,  // some other thread holding or carrying a P is runnable
  kConfirms,  // the view agrees: nothing that could run a G is runnable
  kOverruled, // it would veto, but vetoes have lasted longer than any thread
              // can stay runnable under sched_ext (kVetoBoundNs): not believed
};
// A run of vetoes with no sign of life in between (checkdead finding a
// running M or a pending timer) longer than this is not believed: under
// sched_ext no thread stays runnable past the watchdog's timeout (scx_goro's
// is 5 s) without the scheduler being ejected, so such a view is stale or
// forged (the block is our own memory: anything that kept a mapping of it
// can write it). The runtime then trusts its own count.
constexpr std::int64_t kVetoBoundNs = 6LL * 1000 * 1000 * 1000;
// checkdead saw the process alive: a run of vetoes ends. sched.lock held.
void scx_checkdead_alive();
// Never blocks; tolerates a stale or garbage view (it is advice). On
// kSpurious, counts the veto and prints one line under scxdebug=1.
// sched.lock held (the run of vetoes is guarded by it).
ScxVerdict scx_checkdead_verdict(M* self);
std::uint64_t scx_vetoes();

// Test-only faults (GORO_TEST_HOOKS builds): the next startm that takes an
// idle M skips its wake-up (GORO_DEBUG=dropwakeup=1).
extern std::atomic<bool> scx_dropwakeup;

}  // namespace goro::detail
