// SPDX-License-Identifier: BSD-3-Clause
// The runtime's side of the sched_ext export: attaching to scx_goro, the M
// records, the stores behind every publication site, and the reading of the
// kernel view when checkdead is about to give a verdict. The essay is at the
// top of scx_export.h; the contract is bpf/scx_goro.h.
#include "scx_export.h"

#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdlib>
#include <cstring>

namespace goro::detail {

std::atomic<goro_proc_export*> scx_export{nullptr};
bool scx_partial = false;
bool scx_records = false;
std::atomic<bool> scx_dropwakeup{false};

namespace {

// The connection to the loader: kept open (close-on-exec) for the process's
// whole life; the loader frees our slot when it closes. It hangs up when the
// loader's instance ends: sysmon's scx_watch notices and re-attaches.
int scx_sock = -1;

std::atomic<std::uint64_t> vetoes{0};

// M records in use. Guarded by recordlock, a leaf lock taken only when an
// M is created (newm), starts or ends, and when sysmon re-attaches.
Lock recordlock{LockRank::scxrecord};
bool record_used[GORO_MAX_M] GORO_GUARDED_BY(recordlock);
std::uint32_t record_nm GORO_GUARDED_BY(recordlock) = 0;
// What a re-attach copies (the loader zeroes a block when its instance
// ends, so the old block cannot be copied from): each record's M, whose
// scxword follows every store of the word, and its tid, written once.
M* record_m[GORO_MAX_M] GORO_GUARDED_BY(recordlock);
std::uint32_t record_tid[GORO_MAX_M] GORO_GUARDED_BY(recordlock);

// Store mp's word: into the block, and into mp's own copy (mp's cache
// line, not one shared with other Ms).
void store_word(M* mp, __u64* wp, std::uint64_t w) {
  mp->scxword.store(w, std::memory_order_relaxed);
  __atomic_store_n(wp, w, __ATOMIC_RELEASE);
}

// Store mp's word wherever it goes now: the block when attached, else only
// the mirror -- and then look once more, for a block that a late attach put
// in place meanwhile and whose copy of the mirrors may have missed this
// store (sysmon's second copy catches what this look misses; see
// "Attaching late").
void put_word(M* mp, std::uint64_t w) {
  if (goro_proc_export* x = scx_x()) {
    store_word(mp, &x->m[mp->scxidx].word, w);
    return;
  }
  if ((w >> 32) == 0) w |= 1ull << 32;  // a mirror's count is at least 1 (scx_mirror)
  mp->scxword.store(w, std::memory_order_relaxed);
  if (goro_proc_export* x = scx_x()) __atomic_store_n(&x->m[mp->scxidx].word, w, __ATOMIC_RELEASE);
}

// The last stores of a (re-)attach: heartbeat, then abi, "the runtime
// publishes from now on".
void publish_abi(goro_proc_export* x) {
  scx_store64(&x->hdr.heartbeat_ns, static_cast<std::uint64_t>(nanotime()));
  __atomic_store_n(&x->hdr.abi, static_cast<std::uint32_t>(GORO_EXPORT_ABI), __ATOMIC_RELEASE);
}

[[gnu::format(printf, 1, 2)]] void scxdebugf(const char* fmt, ...) {
  if (!debug.scxdebug) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  lock_print();
  std::fprintf(stderr, "goro: scx: %s\n", buf);
  unlock_print();
}

const char* mstate_name(std::uint32_t s) {
  switch (s) {
    case GORO_M_FREE: return "FREE";
    case GORO_M_RUNNING: return "RUNNING";
    case GORO_M_SPINNING: return "SPINNING";
    case GORO_M_IDLE: return "IDLE";
    case GORO_M_SYSCALL: return "SYSCALL";
    case GORO_M_SYSMON: return "SYSMON";
    case GORO_M_LOCKED: return "LOCKED";
    case GORO_M_STARTING: return "STARTING";
    case GORO_M_NETPOLL: return "NETPOLL";
  }
  return "???";
}

// Why the handshake failed, for the scxdebug line.
char attach_failure[256];
[[gnu::format(printf, 1, 2)]] goro_proc_export* fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(attach_failure, sizeof attach_failure, fmt, ap);
  va_end(ap);
  return nullptr;
}

// The handshake, first half: connect and say hello. Returns the socket, or
// -1 with the reason in attach_failure. Blocking (schedinit), each step
// waits at most a second: an AF_UNIX connect to a full backlog waits for
// the send timeout. Non-blocking (sysmon), a full backlog fails at once.
int hs_begin(const char* sockpath, bool nonblock) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(sockpath) >= sizeof addr.sun_path) {
    fail("socket path too long: %s", sockpath);
    return -1;
  }
  std::strcpy(addr.sun_path, sockpath);

  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) {
    fail("socket: %s", std::strerror(errno));
    return -1;
  }
  // The loader is advice, not a dependency: no step may hang.
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    fail("connect %s: %s", sockpath, e == EAGAIN ? "the loader's backlog is full" : std::strerror(e));
    return -1;
  }
  goro_hello hello{GORO_EXPORT_MAGIC, GORO_EXPORT_ABI};
  if (::send(fd, &hello, sizeof hello, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hello)) {
    int e = errno;
    ::close(fd);
    fail("send hello: %s", std::strerror(e));
    return -1;
  }
  return fd;
}

enum class Hs { kDone, kFailed, kPending };

// The handshake, second half: the welcome on fd. kDone: *out is the mapped
// block and fd is kept as scx_sock. kFailed: the reason is in
// attach_failure, fd is closed, and *permanent says whether trying again
// can help. kPending (nonblock only): no welcome yet, fd stays open.
Hs hs_finish(int fd, bool nonblock, goro_proc_export** out, std::uint32_t* slot, std::uint32_t* flags,
             bool* permanent) {
  *permanent = false;
  goro_welcome w{};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(4 * sizeof(int))];
  iovec iov{&w, sizeof w};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | (nonblock ? MSG_DONTWAIT : 0));
  } while (n < 0 && errno == EINTR);
  int e = errno;
  if (nonblock && n < 0 && (e == EAGAIN || e == EWOULDBLOCK)) return Hs::kPending;
  int mapfd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < nfds; i++) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      if (mapfd < 0) mapfd = f;
      else ::close(f);  // more than we asked for
    }
  }
  // From here on, every failure closes the socket and any fd we received.
  auto cleanup = [&] {
    if (mapfd >= 0) ::close(mapfd);
    ::close(fd);
    return Hs::kFailed;
  };
  if (n < 0) {
    fail("no welcome: %s", e == EAGAIN || e == EWOULDBLOCK ? "timed out" : std::strerror(e));
    return cleanup();
  }
  if (n != static_cast<ssize_t>(sizeof w) || (msg.msg_flags & MSG_TRUNC)) {
    fail("short welcome (%zd bytes)", n);
    return cleanup();
  }
  if (w.magic != GORO_EXPORT_MAGIC) {
    fail("bad welcome magic 0x%x", w.magic);
    return cleanup();
  }
  if (w.abi != GORO_EXPORT_ABI) {
    fail("ABI mismatch (loader %u, runtime %u)", w.abi, GORO_EXPORT_ABI);
    *permanent = true;
    return cleanup();
  }
  if (w.status == -EXDEV) {
    fail("loader refused: this process is in another pid namespace than scx_goro (its thread ids mean nothing to the kernel)");
    *permanent = true;
    return cleanup();
  }
  if (w.status == -EDQUOT) {
    fail("loader refused: this user has as many processes attached as scx_goro allows (--max-procs-per-user)");
    return cleanup();
  }
  if (w.status != 0) {
    fail("loader refused: %s", std::strerror(-w.status));
    return cleanup();
  }
  if (w.map_size < sizeof(goro_proc_export)) {
    fail("map too small (%u < %zu)", w.map_size, sizeof(goro_proc_export));
    return cleanup();
  }
  if (mapfd < 0) {
    fail("no map fd in the welcome");
    return cleanup();
  }
  void* p = ::mmap(nullptr, w.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, mapfd, 0);
  e = errno;
  ::close(mapfd);
  mapfd = -1;
  if (p == MAP_FAILED) {
    fail("mmap: %s", std::strerror(e));
    return cleanup();
  }
  auto* x = static_cast<goro_proc_export*>(p);
  std::uint32_t magic = __atomic_load_n(&x->hdr.magic, __ATOMIC_ACQUIRE);
  if (magic != GORO_EXPORT_MAGIC) {
    ::munmap(p, w.map_size);
    fail("bad block magic 0x%x", magic);
    return cleanup();
  }
  scx_sock = fd;
  *slot = w.slot;
  *flags = w.flags;
  *out = x;
  return Hs::kDone;
}

// The whole handshake, blocking (schedinit): the block, or null with the
// reason in attach_failure.
goro_proc_export* attach(const char* sockpath, std::uint32_t* slot, std::uint32_t* flags, bool* permanent) {
  *permanent = false;
  int fd = hs_begin(sockpath, false);
  if (fd < 0) return nullptr;
  goro_proc_export* x = nullptr;
  return hs_finish(fd, false, &x, slot, flags, permanent) == Hs::kDone ? x : nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------
// Attaching
// ---------------------------------------------------------------------------
namespace {
// Where the loader is: its pin directory (it exists while a loader runs)
// and its socket. Read once, at attach time, from the environment.
const char* pin_dir = GORO_SCX_PIN_DIR;
const char* sock_path = GORO_SCX_SOCK;

bool loader_present() {
  struct stat st;
  return ::stat(pin_dir, &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace

namespace {
bool tries_over = false;  // a refusal that cannot change: sysmon tries no more
}

void scx_attach() {
  if (!debug.scx) {
    scxdebugf("standalone: GORO_DEBUG=scx=0");
    return;
  }
  scx_records = true;
  const char* dir = std::getenv("GORO_SCX_PIN_DIR");
  if (dir && *dir) pin_dir = dir;
  const char* sockpath = std::getenv("GORO_SCX_SOCK");
  if (sockpath && *sockpath) sock_path = sockpath;
  dir = pin_dir;
  sockpath = sock_path;
  if (!loader_present()) {
    scxdebugf("standalone: no scx_goro loader (%s does not exist)", dir);
    return;
  }
  std::uint32_t slot = 0, flags = 0;
  bool permanent = false;
  goro_proc_export* x = attach(sockpath, &slot, &flags, &permanent);
  if (!x) {
    tries_over = permanent;
    scxdebugf("standalone: %s", attach_failure);
    return;
  }
  __atomic_store_n(&x->hdr.pid, static_cast<std::uint32_t>(::getpid()), __ATOMIC_RELAXED);
  __atomic_store_n(&x->hdr.nm, 0u, __ATOMIC_RELAXED);
  publish_abi(x);
  scx_partial = (flags & GORO_ATTACH_PARTIAL) != 0;
  scx_export.store(x, std::memory_order_release);
  scxdebugf("attached to scx_goro, slot %u%s", slot, scx_partial ? " (partial: Ms switch to SCHED_EXT)" : "");
}

// ---------------------------------------------------------------------------
// Following a restarted loader, attaching late (scx_export.h)
// ---------------------------------------------------------------------------
namespace {
// sysmon's alone, like everything below.
std::int64_t watch_next = 0;
bool loader_lost = false;
int hs_fd = -1;                        // a handshake under way
std::int64_t hs_since = 0;
goro_proc_export* recopy = nullptr;    // copy the mirrors once more, next loop

constexpr std::int64_t kMs = 1000 * 1000;

// The store count an M keeps in the upper half of its word.
std::uint32_t word_count(std::uint64_t w) { return static_cast<std::uint32_t>(w >> 32); }

// Give each record in use of block x its tid and, unless its M has stored a
// newer word into x already, the M's mirrored word.
void copy_records(goro_proc_export* x) GORO_REQUIRES(recordlock) {
  for (std::uint32_t i = 0; i < record_nm; i++) {
    if (!record_used[i]) continue;
    __atomic_store_n(&x->m[i].tid, record_tid[i], __ATOMIC_RELEASE);
    __u64 ow = record_m[i]->scxword.load(std::memory_order_relaxed);
    __u64 nw = __atomic_load_n(&x->m[i].word, __ATOMIC_ACQUIRE);
    while (word_count(ow) > word_count(nw) &&
           !__atomic_compare_exchange_n(&x->m[i].word, &nw, ow, false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE)) {
    }
  }
}

// Make x the block and fill it from the records. late: the first block of a
// process that started standalone (it takes the loader's flags).
void install(goro_proc_export* x, std::uint32_t slot, std::uint32_t flags, bool late) {
  __atomic_store_n(&x->hdr.pid, static_cast<std::uint32_t>(::getpid()), __ATOMIC_RELAXED);
  std::uint32_t switch_tids[GORO_MAX_M];
  std::uint32_t nswitch = 0;
  recordlock.lock();
  // Under recordlock: an M starting reads it there (scx_mthread_start).
  if (late) scx_partial = (flags & GORO_ATTACH_PARTIAL) != 0;
  __atomic_store_n(&x->hdr.nm, record_nm, __ATOMIC_RELEASE);
  scx_export.store(x, std::memory_order_release);
  // From here on every new store goes to x; fill in what was stored before
  // (from our own copy), unless the M has stored again since.
  copy_records(x);
  if (late && scx_partial) {
    for (std::uint32_t i = 0; i < record_nm; i++)
      if (record_used[i] && record_tid[i] != 0) switch_tids[nswitch++] = record_tid[i];
  }
  recordlock.unlock();
  publish_abi(x);
  recopy = x;
  // Partial mode: the Ms that exist switch now (those that start from here
  // on switch themselves). An error leaves that M scheduled as before.
  int nok = 0;
  for (std::uint32_t i = 0; i < nswitch; i++) {
    sched_param sp{};
    if (::sched_setscheduler(static_cast<pid_t>(switch_tids[i]), GORO_SCHED_EXT, &sp) == 0) nok++;
  }
  if (late)
    scxdebugf("attached to scx_goro late, slot %u%s", slot, scx_partial ? " (partial: Ms switch to SCHED_EXT)" : "");
  else
    scxdebugf("re-attached to a restarted scx_goro, slot %u", slot);
  if (nswitch) scxdebugf("%d of %u Ms switched to SCHED_EXT", nok, nswitch);
}
}  // namespace

bool scx_connected() { return scx_on() && !loader_lost; }

bool scx_handshaking() { return hs_fd >= 0 || recopy != nullptr; }

bool scx_watch(std::int64_t now) {
  if (!scx_records || now < watch_next) return false;
  if (goro_proc_export* x = recopy) {
    // The second copy of a (re-)attach: an M that mirrored a word just as
    // the block appeared, and did not see it, is in the block now.
    recopy = nullptr;
    recordlock.lock();
    copy_records(x);
    recordlock.unlock();
  }
  const bool attached = scx_on();
  const char* what = attached ? "re-attached" : "attached";
  if (hs_fd < 0) {
    if (attached && !loader_lost) {
      watch_next = now + 100 * kMs;
      char b;
      ssize_t n = ::recv(scx_sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) return false;
      ::close(scx_sock);
      scx_sock = -1;
      loader_lost = true;
      scxdebugf("the loader hung up; attaching to the next one when it runs");
    }
    if (tries_over) {
      watch_next = INT64_MAX;
      return false;
    }
    watch_next = now + (attached ? 500 : 1000) * kMs;
    if (!loader_present()) return false;
    hs_fd = hs_begin(sock_path, true);
    if (hs_fd < 0) {
      scxdebugf("not %s yet: %s", what, attach_failure);
      return false;
    }
    hs_since = now;
  }
  goro_proc_export* x = nullptr;
  std::uint32_t slot = 0, flags = 0;
  bool permanent = false;
  switch (hs_finish(hs_fd, true, &x, &slot, &flags, &permanent)) {
    case Hs::kPending:
      if (now - hs_since < 1000 * kMs) {
        watch_next = now;  // look again on the next loop
        return false;
      }
      ::close(hs_fd);
      hs_fd = -1;
      watch_next = now + (attached ? 500 : 1000) * kMs;
      scxdebugf("not %s yet: no welcome: timed out", what);
      return false;
    case Hs::kFailed:
      hs_fd = -1;
      tries_over = permanent;
      watch_next = now + 5000 * kMs;
      scxdebugf("not %s yet: %s%s", what, attach_failure, permanent ? "; no more tries" : "");
      return false;
    case Hs::kDone:
      break;
  }
  hs_fd = -1;
  install(x, slot, flags, !attached);
  loader_lost = false;
  watch_next = now;  // the second copy, on the next loop
  return true;
}

// ---------------------------------------------------------------------------
// M records
// ---------------------------------------------------------------------------
std::int32_t scx_mrecord_alloc(M* mp) {
  if (!scx_records) return -1;
  recordlock.lock();
  std::int32_t idx = -1;
  for (std::int32_t i = 0; i < GORO_MAX_M; i++) {
    if (!record_used[i]) {
      record_used[i] = true;
      record_m[i] = mp;
      idx = i;
      break;
    }
  }
  if (idx >= 0 && static_cast<std::uint32_t>(idx) + 1 > record_nm) {
    record_nm = static_cast<std::uint32_t>(idx) + 1;
    if (goro_proc_export* x = scx_x()) __atomic_store_n(&x->hdr.nm, record_nm, __ATOMIC_RELEASE);
  }
  recordlock.unlock();
  return idx;
}

void scx_mrecord_free(M* mp, std::int32_t idx) {
  if (idx < 0) return;
  recordlock.lock();
  // Under recordlock, the block cannot appear meanwhile (install).
  goro_proc_export* x = scx_x();
  if (x) store_word(mp, &x->m[idx].word, static_cast<std::uint64_t>(GORO_M_FREE));
  record_m[idx] = nullptr;
  record_tid[idx] = 0;
  if (x) __atomic_store_n(&x->m[idx].tid, 0u, __ATOMIC_RELEASE);
  record_used[idx] = false;
  while (record_nm > 0 && !record_used[record_nm - 1]) record_nm--;
  if (x) __atomic_store_n(&x->hdr.nm, record_nm, __ATOMIC_RELEASE);
  recordlock.unlock();
}

void scx_mthread_start(M* mp) {
  if (mp->scxidx < 0) return;
  // Under recordlock: a (re-)attach copying tids must see this one, and
  // scx_partial is set there by a late attach.
  recordlock.lock();
  record_tid[mp->scxidx] = static_cast<std::uint32_t>(mp->tid);
  if (goro_proc_export* x = scx_x())
    __atomic_store_n(&x->m[mp->scxidx].tid, static_cast<std::uint32_t>(mp->tid), __ATOMIC_RELEASE);
  const bool partial = scx_partial;
  recordlock.unlock();
  if (partial) {
    // The loader runs in partial mode (only SCHED_EXT tasks are its): Ms
    // opt in one by one. An error only means this M is scheduled as before.
    sched_param sp{};
    sp.sched_priority = 0;
    int rc = ::sched_setscheduler(0, GORO_SCHED_EXT, &sp);
    int e = errno;
    static std::atomic<int> nok{0}, nfail{0};
    if (rc == 0) {
      int k = nok.fetch_add(1) + 1;
      scxdebugf("M%lld (tid %ld) switched to SCHED_EXT (%d so far)", static_cast<long long>(mp->id), mp->tid, k);
    } else {
      int k = nfail.fetch_add(1) + 1;
      scxdebugf("M%lld (tid %ld) could not switch to SCHED_EXT: %s (%d failures so far)",
                static_cast<long long>(mp->id), mp->tid, std::strerror(e), k);
    }
  }
}

void scx_mthread_exit(M* mp) {
  if (mp->scxidx < 0) return;
  std::int32_t idx = mp->scxidx;
  mp->scxidx = -1;
  scx_mrecord_free(mp, idx);
}

// ---------------------------------------------------------------------------
// M words
// ---------------------------------------------------------------------------
void scx_mpub_slow(M* mp) {
  std::int32_t pidx = mp->scxcarry >= 0 ? mp->scxcarry : p_index(mp->p);
  std::uint64_t flags = (mp->scxlockheld ? GORO_MF_LOCKHELD : 0) | (mp->scxcarry >= 0 ? GORO_MF_CARRYING : 0) |
                        (mp->scxinjecting ? GORO_MF_INJECTING : 0);
  std::uint64_t w = GORO_MW_MAKE(mp->scxstate, pidx, flags) | (static_cast<std::uint64_t>(++mp->scxstores) << 32);
  put_word(mp, w);
}

void scx_carry_slow(M* self, P* pp) {
  self->scxcarry = static_cast<std::int16_t>(p_index(pp));
  scx_mpub_slow(self);
}

void scx_mstarting_slow(M* target, P* pp) {
  goro_proc_export* x = scx_x();
  std::uint64_t old = x ? __atomic_load_n(&x->m[target->scxidx].word, __ATOMIC_RELAXED)
                        : target->scxword.load(std::memory_order_relaxed);
  put_word(target, GORO_MW_MAKE(GORO_M_STARTING, p_index(pp), 0) | (old & ~0xffffffffULL));
}

void scx_mstarting_locked_slow(M* target, P* pp) {
  goro_proc_export* x = scx_x();
  if (!x) {
    // Not attached: the same exchange on the mirror.
    std::uint64_t old = target->scxword.load(std::memory_order_acquire);
    if (GORO_MW_STATE(old) != GORO_M_LOCKED) return;
    std::uint64_t w = GORO_MW_MAKE(GORO_M_STARTING, p_index(pp), 0) | (old & ~0xffffffffULL);
    target->scxword.compare_exchange_strong(old, w, std::memory_order_release, std::memory_order_relaxed);
    return;
  }
  __u64* wp = &x->m[target->scxidx].word;
  __u64 old = __atomic_load_n(wp, __ATOMIC_ACQUIRE);
  if (GORO_MW_STATE(old) != GORO_M_LOCKED) return;  // not parked yet: it will look for itself
  std::uint64_t w = GORO_MW_MAKE(GORO_M_STARTING, p_index(pp), 0) | (old & ~0xffffffffULL);
  if (__atomic_compare_exchange_n(wp, &old, w, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
    target->scxword.store(w, std::memory_order_relaxed);
}

void scx_lockheld_slow(bool held) {
  M* mp = m_of_thread();
  if (!mp || mp->scxidx < 0) return;
  mp->scxlockheld = held;
  scx_mpub_slow(mp);
}

// ---------------------------------------------------------------------------
// P words, heartbeat, counters
// ---------------------------------------------------------------------------
void scx_ppub_slow(P* pp) {
  std::int32_t id = p_index(pp);
  if (id < 0) return;
  std::uint32_t status = pp->status.load(std::memory_order_relaxed);
  M* mp = pp->m.load(std::memory_order_relaxed);
  std::int32_t midx = mp ? mp->scxidx : -1;
  std::uint32_t h = pp->runqhead.load(std::memory_order_acquire);
  std::uint32_t t = pp->runqtail.load(std::memory_order_acquire);
  G* next = pp->runnext.load(std::memory_order_acquire);
  std::uint32_t n = t - h;
  if (n > kRunqSize) n = 0;  // read an inconsistent head and tail
  G* first = next ? next : (n > 0 ? pp->runq[h % kRunqSize].load(std::memory_order_relaxed) : nullptr);
  if (next) n++;
  std::uint64_t goid = first ? static_cast<std::uint64_t>(__atomic_load_n(&first->goid, __ATOMIC_RELAXED)) : 0;
  goro_p_export* r = &scx_x()->p[id];
  scx_store64(&r->word, GORO_PW_MAKE(status & 0xff, midx, n));
  scx_store64(&r->runnext_goid, goid);
}

void scx_heartbeat(std::int64_t now) {
  if (goro_proc_export* x = scx_x()) scx_store64(&x->hdr.heartbeat_ns, static_cast<std::uint64_t>(now));
}

void scx_counters_begin(goro_proc_export* x) {
  __u64* seq = &x->sc.seq;
  std::uint64_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
  // Odd: one writer (sched.lock), so s was even. The fields are then
  // written with release stores (scx_store32/64), each ordered after this
  // one: a reader that sees a new field value sees the odd count too. (No
  // standalone fence: TSan does not model them; on x86 both are plain
  // moves anyway.)
  __atomic_store_n(seq, s + 1, __ATOMIC_RELAXED);
}

void scx_counters_end(goro_proc_export* x) {
  __u64* seq = &x->sc.seq;
  std::uint64_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
  __atomic_store_n(seq, s + 1, __ATOMIC_RELEASE);  // even: every field before it
}

// ---------------------------------------------------------------------------
// In-kernel checkdead
// ---------------------------------------------------------------------------
namespace {
// When the current run of vetoes began (0: none); see kVetoBoundNs.
std::int64_t veto_run_since = 0;
}  // namespace

void scx_checkdead_alive() { veto_run_since = 0; }

ScxVerdict scx_checkdead_verdict(M* self) {
  goro_proc_export* x = scx_x();
  if (!x) return ScxVerdict::kNoView;
  // The view is the BPF side's, for this attach of the slot; anything else
  // (not maintained yet, or left from a previous owner) is no view at all.
  std::uint64_t gen = __atomic_load_n(&x->hdr.gen, __ATOMIC_RELAXED);
  std::uint64_t kvgen = __atomic_load_n(&x->kv.gen, __ATOMIC_ACQUIRE);
  if (gen == 0 || kvgen != gen) return ScxVerdict::kNoView;
  std::int32_t selfidx = self ? self->scxidx : -1;
  std::uint32_t unmatched = __atomic_load_n(&x->kv.nr_unmatched_runnable, __ATOMIC_RELAXED);
  for (std::int32_t i = 0; i < GORO_MAX_M; i++) {
    if (i == selfidx) continue;
    std::uint64_t word = __atomic_load_n(&x->m[i].word, __ATOMIC_ACQUIRE);
    std::uint32_t state = GORO_MW_STATE(word);
    std::int32_t pidx = GORO_MW_P(word);
    bool carrying = (word & GORO_MF_CARRYING) != 0;
    if (state == GORO_M_FREE || state >= GORO_M_NR_STATES) continue;
    if (pidx < 0 && !carrying) continue;  // neither holds nor carries a P
    std::uint32_t tid = __atomic_load_n(&x->m[i].tid, __ATOMIC_RELAXED);
    std::uint64_t km = __atomic_load_n(&x->kv.km[i], __ATOMIC_RELAXED);
    const char* why = nullptr;
    if (tid != 0 && (km & GORO_KM_RUNNABLE) && GORO_KM_TID(km) == tid) {
      why = "runnable";
    } else if (tid == 0 && state == GORO_M_STARTING && pidx >= 0 && unmatched > 0) {
      // Being created: its thread has no tid in the record yet, so the BPF
      // side cannot match it; some unmatched thread of ours is runnable.
      why = "being created, with an unmatched thread of ours runnable";
    } else {
      continue;
    }
    const std::int64_t now = nanotime();
    if (veto_run_since == 0) veto_run_since = now;
    if (now - veto_run_since > kVetoBoundNs) return ScxVerdict::kOverruled;
    std::uint64_t k = vetoes.fetch_add(1, std::memory_order_relaxed) + 1;
    scxdebugf("checkdead veto #%llu: kernel sees M%d (tid %u, %s%s P%d) %s", static_cast<unsigned long long>(k), i,
              tid, mstate_name(state), carrying ? " carrying" : "", pidx, why);
    return ScxVerdict::kSpurious;
  }
  if (debug.scxdebug) {
    // What the confirmation rests on: every described M as the view saw it.
    std::uint64_t upd = __atomic_load_n(&x->kv.updated_ns, __ATOMIC_RELAXED);
    scxdebugf("checkdead confirmed: the kernel view was updated %lld us ago",
              static_cast<long long>((nanotime() - static_cast<std::int64_t>(upd)) / 1000));
    for (std::int32_t i = 0; i < GORO_MAX_M; i++) {
      std::uint64_t word = __atomic_load_n(&x->m[i].word, __ATOMIC_ACQUIRE);
      if (GORO_MW_STATE(word) == GORO_M_FREE) continue;
      std::uint64_t km = __atomic_load_n(&x->kv.km[i], __ATOMIC_RELAXED);
      scxdebugf("checkdead confirmed: M%d%s tid %u %s%s P%d, kernel: %s tid %u", i, i == selfidx ? " (self)" : "",
                __atomic_load_n(&x->m[i].tid, __ATOMIC_RELAXED), mstate_name(GORO_MW_STATE(word)),
                (word & GORO_MF_CARRYING) ? " carrying" : "", GORO_MW_P(word),
                (km & GORO_KM_RUNNABLE) ? "runnable" : "not runnable", GORO_KM_TID(km));
    }
  }
  return ScxVerdict::kConfirms;
}

std::uint64_t scx_vetoes() { return vetoes.load(std::memory_order_relaxed); }

}  // namespace goro::detail
