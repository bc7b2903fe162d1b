// SPDX-License-Identifier: GPL-2.0-only
//
// AttachServer: see attach_server.h, and "The runtime export" in
// bpf/scx_goro.h for the protocol this implements.

#include "attach_server.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace {

// A client that connected but sent no hello within this long is dropped:
// it holds no slot, but we do not keep its fd forever.
constexpr uint64_t kHelloTimeoutMs = 1000;
// Connections that have not said hello yet: at most this many in all and
// per uid; a new one beyond either bound pushes out the oldest (of its uid,
// else of all). An honest client sends its hello right after connecting,
// so it is never the oldest for long. Each wake-up accepts at most
// kAcceptBatch connections, so the backlog drains even under a flood.
constexpr size_t kMaxPending = 64;
constexpr size_t kMaxPendingPerUid = 8;
constexpr int kAcceptBatch = 64;
// accept4 failing for lack of fds with nothing pending to drop: the
// listening socket stays readable, so it is left out of poll this long
// instead of spinning.
constexpr uint64_t kAcceptBackoffMs = 100;
// SO_PEERPIDFD (include/uapi/asm-generic/socket.h, Linux 6.5); older libc
// headers lack it.
constexpr int kSoPeerPidfd = 77;

uint64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// Is @pid in our pid namespace? (Its /proc/PID/ns/pid is the same inode as ours.)
bool same_pid_ns(pid_t pid) {
  struct stat mine, theirs;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/ns/pid", static_cast<int>(pid));
  if (stat("/proc/self/ns/pid", &mine) != 0 || stat(path, &theirs) != 0) return false;
  return mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
}

}  // namespace

size_t AttachServer::block_map_size() {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (sizeof(goro_proc_export) + page - 1) / page * page;
}

AttachServer::~AttachServer() { stop(); }

bool AttachServer::new_block(uint32_t slot, int* fd_out, goro_proc_export** blk_out) {
  // Must match the inner map template in scx_goro.bpf.c (struct goro_proc_map)
  // exactly, or the insert into goro_procs fails with EINVAL.
  // (Not LIBBPF_OPTS: its C idiom, a designated initializer naming some
  // fields, is clang 19's -Wmissing-designated-field-initializers in C++.)
  bpf_map_create_opts opts{};
  opts.sz = sizeof(opts);
  opts.map_flags = BPF_F_MMAPABLE;
  char name[16];
  std::snprintf(name, sizeof(name), "goro_proc%u", slot);
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(uint32_t), sizeof(goro_proc_export), 1, &opts);
  if (fd < 0) return false;
  void* p = mmap(nullptr, block_map_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(fd);
    errno = e;
    return false;
  }
  *fd_out = fd;
  *blk_out = static_cast<goro_proc_export*>(p);
  return true;
}

bool AttachServer::start(uint32_t attach_flags, std::string* err) {
  attach_flags_ = attach_flags;
  // Non-blocking: accept_batch accepts until EAGAIN.
  listen_fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) {
    *err = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", GORO_SCX_SOCK);
  // A SIGKILLed loader leaves its socket behind; only one loader can run
  // (one sched_ext scheduler at a time), so a socket here is stale.
  unlink(GORO_SCX_SOCK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    *err = std::string("bind ") + GORO_SCX_SOCK + ": " + std::strerror(errno);
    return false;
  }
  // Any user's goro process may attach: it only ever gets its own block.
  chmod(GORO_SCX_SOCK, 0666);
  if (listen(listen_fd_, 64) != 0) {
    *err = std::string("listen: ") + std::strerror(errno);
    return false;
  }
  if (pipe2(wake_fd_, O_CLOEXEC | O_NONBLOCK) != 0) {
    *err = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  thread_ = std::thread([this] { run(); });
  return true;
}

void AttachServer::stop() {
  if (thread_.joinable()) {
    char c = 1;
    (void)!write(wake_fd_[1], &c, 1);
    thread_.join();
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (uint32_t i = 0; i < slots_.size(); i++)
      if (slots_[i].conn >= 0) free_slot(i);
    for (const Pending& p : pending_) close(p.fd);
    pending_.clear();
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    unlink(GORO_SCX_SOCK);
  }
  for (int& fd : wake_fd_) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

std::vector<AttachServer::Attached> AttachServer::attached() {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<Attached> out;
  for (uint32_t i = 0; i < slots_.size(); i++)
    if (slots_[i].conn >= 0) {
      Attached a = {i, slots_[i].tgid, slots_[i].gen, {}};
      std::memcpy(a.m, slots_[i].blk->m, sizeof(a.m));
      out.push_back(a);
    }
  return out;
}

// Frees @slot: the ownership records first (from then on the BPF side
// ignores the block), then the block leaves goro_procs and is zeroed (the
// former owner's mapping, if it kept one, shows nothing of its own past)
// and dropped; the next attach gets a new block and a new generation.
// mu_ must be held.
void AttachServer::free_slot(uint32_t slot) {
  Slot& s = slots_[slot];
  bpf_map_delete_elem(maps_.tgid_fd, &s.tgid);
  goro_slot_owner none = {};
  bpf_map_update_elem(maps_.owner_fd, &slot, &none, BPF_ANY);
  __atomic_add_fetch(maps_.attach_seq, 1, __ATOMIC_SEQ_CST);
  bpf_map_delete_elem(maps_.procs_fd, &slot);
  if (s.blk != nullptr) {
    std::memset(s.blk, 0, sizeof(goro_proc_export));
    munmap(s.blk, block_map_size());
  }
  if (s.map_fd >= 0) close(s.map_fd);
  if (s.pidfd >= 0) close(s.pidfd);
  close(s.conn);
  s = Slot{};
}

void AttachServer::reply(int fd, int32_t status, uint32_t slot, uint64_t gen, int map_fd) {
  goro_welcome w = {};
  w.magic = GORO_EXPORT_MAGIC;
  w.abi = GORO_EXPORT_ABI;
  w.status = status;
  w.slot = slot;
  w.gen = gen;
  w.flags = attach_flags_;
  w.map_size = static_cast<uint32_t>(block_map_size());
  iovec iov = {&w, sizeof(w)};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
  if (map_fd >= 0) {
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &map_fd, sizeof(int));
  }
  // MSG_NOSIGNAL: a client that hung up must not SIGPIPE the loader.
  (void)sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

// The one message of an attaching client. Whatever happens, @fd ends up
// either owned by a slot or closed.
void AttachServer::handle_hello(int fd, uint32_t peer_uid) {
  goro_hello hello = {};
  ssize_t n = recv(fd, &hello, sizeof(hello), MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    pending_.push_back({fd, now_ms(), peer_uid});
    return;
  }
  if (n != static_cast<ssize_t>(sizeof(hello)) || hello.magic != GORO_EXPORT_MAGIC ||
      hello.abi != GORO_EXPORT_ABI) {
    if (n > 0) reply(fd, -EPROTO, 0, 0, -1);
    close(fd);
    return;
  }
  ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0) {
    reply(fd, -EPROTO, 0, 0, -1);
    close(fd);
    return;
  }
  const uint32_t tgid = static_cast<uint32_t>(cred.pid);
  const uint32_t uid = cred.uid;
  // The process itself, not its pid: the slot is freed when it exits even
  // if its connection lives on (passed to another process), and a reused
  // pid can never inherit it. SO_PEERPIDFD names the process that
  // connected (6.5+); pidfd_open of the pid is the fallback.
  int pidfd = -1;
  socklen_t plen = sizeof(pidfd);
  if (getsockopt(fd, SOL_SOCKET, kSoPeerPidfd, &pidfd, &plen) != 0) pidfd = static_cast<int>(syscall(SYS_pidfd_open, cred.pid, 0));
  if (pidfd < 0) {
    reply(fd, -ESRCH, 0, 0, -1);
    close(fd);
    return;
  }
  pollfd pp = {pidfd, POLLIN, 0};
  if (poll(&pp, 1, 0) != 0) {  // it is gone already
    close(pidfd);
    reply(fd, -ESRCH, 0, 0, -1);
    close(fd);
    return;
  }
  auto refuse = [&](int32_t status) {
    close(pidfd);
    reply(fd, status, 0, 0, -1);
    close(fd);
  };
  // A process in another pid namespace would publish tids the kernel does
  // not know by those numbers: none of its Ms would ever be matched, and
  // each tid would name some other thread of ours. Refused (-EXDEV), not
  // translated: threads born later would need translating too.
  if (!same_pid_ns(cred.pid)) {
    refuse(-EXDEV);
    return;
  }

  std::lock_guard<std::mutex> lk(mu_);
  // The same process attaching again replaces its old slot: after an
  // exec() the new image connects while the old image's connection (closed
  // by close-on-exec) may not have been seen to hang up yet. Only that
  // process can have that tgid (a dead one's slot went with its pidfd), so
  // nobody else is harmed.
  for (uint32_t i = 0; i < slots_.size(); i++)
    if (slots_[i].conn >= 0 && slots_[i].tgid == tgid) free_slot(i);
  // Limits: a non-root uid holds at most limits_.per_user slots and never
  // the last root_reserve() free ones.
  uint32_t slot = UINT32_MAX, nfree = 0, mine = 0;
  for (uint32_t i = 0; i < slots_.size(); i++) {
    if (slots_[i].conn < 0) {
      nfree++;
      if (slot == UINT32_MAX) slot = i;
    } else if (slots_[i].uid == uid) {
      mine++;
    }
  }
  if (slot == UINT32_MAX || (uid != 0 && nfree <= root_reserve(static_cast<uint32_t>(slots_.size())))) {
    refuse(-EBUSY);
    return;
  }
  if (uid != 0 && mine >= limits_.per_user) {
    refuse(-EDQUOT);
    return;
  }
  int map_fd = -1;
  goro_proc_export* b = nullptr;
  if (!new_block(slot, &map_fd, &b)) {
    std::fprintf(stderr, "scx_goro: attach of pid %u: creating its block: %s\n", tgid, std::strerror(errno));
    refuse(-ENOMEM);
    return;
  }
  const uint64_t gen = ++next_gen_;
  b->hdr.magic = GORO_EXPORT_MAGIC;
  b->hdr.slot = slot;
  b->hdr.flags = attach_flags_;
  b->hdr.gen = gen;
  // Ownership records after the block is ready, tgid -> slot last: the BPF
  // side starts from the tgid.
  // The block goes into goro_procs first, the ownership records after it,
  // tgid -> slot last: the BPF side starts from the tgid.
  goro_slot_owner own = {tgid, 0, gen};
  goro_tgid_slot ts = {slot, 0, gen};
  if (bpf_map_update_elem(maps_.procs_fd, &slot, &map_fd, BPF_ANY) != 0 ||
      bpf_map_update_elem(maps_.owner_fd, &slot, &own, BPF_ANY) != 0 ||
      bpf_map_update_elem(maps_.tgid_fd, &tgid, &ts, BPF_ANY) != 0) {
    std::fprintf(stderr, "scx_goro: attach of pid %u: updating the maps: %s\n", tgid, std::strerror(errno));
    goro_slot_owner none = {};
    bpf_map_update_elem(maps_.owner_fd, &slot, &none, BPF_ANY);
    bpf_map_delete_elem(maps_.tgid_fd, &tgid);
    bpf_map_delete_elem(maps_.procs_fd, &slot);
    munmap(b, block_map_size());
    close(map_fd);
    refuse(-ENOSPC);
    return;
  }
  __atomic_add_fetch(maps_.attach_seq, 1, __ATOMIC_SEQ_CST);
  slots_[slot] = Slot{fd, tgid, gen, map_fd, b, pidfd, uid};
  reply(fd, 0, slot, gen, map_fd);
}

// Accepts what is waiting (up to kAcceptBatch) and handles each one's hello
// if it is there; see kMaxPending.
void AttachServer::accept_batch() {
  for (int k = 0; k < kAcceptBatch; k++) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) && !pending_.empty()) {
        // Out of fds: the oldest hello-less connection makes room.
        close(pending_.front().fd);
        pending_.erase(pending_.begin());
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) accept_paused_until_ = now_ms() + kAcceptBackoffMs;
      return;
    }
    ucred cred = {};
    socklen_t len = sizeof(cred);
    const uint32_t uid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.uid : UINT32_MAX;
    size_t same = 0, oldest_same = pending_.size();
    for (size_t i = 0; i < pending_.size(); i++) {
      if (pending_[i].uid != uid) continue;
      if (same++ == 0) oldest_same = i;
    }
    size_t drop = pending_.size();
    if (same >= kMaxPendingPerUid)
      drop = oldest_same;
    else if (pending_.size() >= kMaxPending)
      drop = 0;
    if (drop < pending_.size()) {
      close(pending_[drop].fd);
      pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(drop));
    }
    handle_hello(fd, uid);
  }
}

void AttachServer::run() {
  std::vector<pollfd> pfds;
  std::vector<int> slot_of;  // per pfd: slot, -1 listen/wake, -2 - i for pending_[i]
  for (;;) {
    pfds.clear();
    slot_of.clear();
    pfds.push_back({wake_fd_[0], POLLIN, 0});
    slot_of.push_back(-1);
    pfds.push_back({listen_fd_, POLLIN, 0});
    slot_of.push_back(-1);
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (uint32_t i = 0; i < slots_.size(); i++) {
        if (slots_[i].conn < 0) continue;
        pfds.push_back({slots_[i].conn, POLLIN, 0});
        slot_of.push_back(static_cast<int>(i));
        pfds.push_back({slots_[i].pidfd, POLLIN, 0});
        slot_of.push_back(static_cast<int>(i));
      }
    }
    for (size_t i = 0; i < pending_.size(); i++) {
      pfds.push_back({pending_[i].fd, POLLIN, 0});
      slot_of.push_back(-2 - static_cast<int>(i));
    }
    if (now_ms() < accept_paused_until_) pfds[1].fd = -1;  // poll ignores it
    int n = poll(pfds.data(), pfds.size(), pending_.empty() && pfds[1].fd >= 0 ? 1000 : 100);
    if (n < 0 && errno != EINTR) {
      std::fprintf(stderr, "scx_goro: attach server: poll: %s\n", std::strerror(errno));
      return;
    }
    if (pfds[0].revents != 0) return;  // stop()

    std::vector<Pending> still_pending;
    std::vector<Pending> ready;
    const uint64_t now = now_ms();
    for (size_t i = 2; i < pfds.size(); i++) {
      const int tag = slot_of[i];
      if (tag >= 0) {
        if (pfds[i].revents == 0) continue;
        std::lock_guard<std::mutex> lk(mu_);
        const uint32_t slot = static_cast<uint32_t>(tag);
        if (slots_[slot].pidfd == pfds[i].fd) {  // the owner exited
          free_slot(slot);
          continue;
        }
        // A live process sends nothing after its hello: readable means hang-up
        // (or junk, which we discard).
        char buf[64];
        ssize_t r = recv(pfds[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR))) continue;
        if (slots_[slot].conn == pfds[i].fd) free_slot(slot);
      } else {
        const Pending& p = pending_[static_cast<size_t>(-2 - tag)];
        if (pfds[i].revents != 0)
          ready.push_back(p);
        else if (now - p.since_ms > kHelloTimeoutMs)
          close(p.fd);
        else
          still_pending.push_back(p);
      }
    }
    pending_.swap(still_pending);
    for (const Pending& p : ready) handle_hello(p.fd, p.uid);

    if (pfds[1].revents & POLLIN) accept_batch();
  }
}
