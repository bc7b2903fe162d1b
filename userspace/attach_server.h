// SPDX-License-Identifier: GPL-2.0-only
//
// AttachServer: the loader's half of the runtime export (bpf/scx_goro.h,
// "The runtime export"). It owns the per-process blocks (one mmapable BPF
// array map each, inner maps of `goro_procs`), the ownership records in
// `goro_slot_owner` / `goro_tgid_slot`, and the SOCK_SEQPACKET server at
// GORO_SCX_SOCK through which goro processes attach.
//
// Every attach gets a block of its own: a new map, created for it and
// swapped into its slot of `goro_procs`; freeing the slot takes the map out
// again. An mmap cannot be revoked, so a former owner that kept its
// mapping (it closed the socket, forked, passed the fd on) still has its
// old block -- and nothing else: it never shares memory with whoever owns
// the slot next.
//
// Threads: the server runs on its own thread, so a slow or malicious client
// can never stall the loader's main loop (stats, events, exit detection).
// The main thread only calls attached() (under mu_) and stop().
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "scx_goro.h"

class AttachServer {
 public:
  struct Maps {
    int procs_fd;             // goro_procs (ARRAY_OF_MAPS)
    int owner_fd;             // goro_slot_owner
    int tgid_fd;              // goro_tgid_slot
    volatile __u64* attach_seq;  // the BPF .bss counter bumped at every (de)attach
  };

  // A copy of one attached slot's identity and M table (for stats).
  struct Attached {
    uint32_t slot;
    uint32_t tgid;
    uint64_t gen;
    goro_m_export m[GORO_MAX_M];
  };

  AttachServer() = default;
  AttachServer(const AttachServer&) = delete;
  AttachServer& operator=(const AttachServer&) = delete;
  ~AttachServer();

  // Limits on attaching (see "Limits" in attach_server.cpp).
  struct Limits {
    uint32_t nr_slots = GORO_MAX_PROCS;  // the BPF maps' max_entries
    uint32_t per_user = GORO_MAX_PROCS / 4;  // slots one non-root uid may hold
  };
  // Takes the maps; blocks are created per attach. Must run before the
  // struct_ops map is attached.
  void set_maps(const Maps& maps, const Limits& limits) {
    maps_ = maps;
    limits_ = limits;
    slots_.assign(limits.nr_slots, Slot{});
  }
  // Slots a non-root uid can never take: kept for root's processes.
  static uint32_t root_reserve(uint32_t nr_slots) { return nr_slots >= 8 ? nr_slots / 8 : (nr_slots > 1 ? 1 : 0); }
  // Binds GORO_SCX_SOCK (replacing a stale one) and starts the thread.
  bool start(uint32_t attach_flags, std::string* err);
  // Stops the thread, closes every connection, frees every slot, removes the socket.
  void stop();

  std::vector<Attached> attached();
  static size_t block_map_size();

 private:
  struct Slot {
    int conn = -1;  // the process's connection; -1: slot free
    uint32_t tgid = 0;
    uint64_t gen = 0;
    int map_fd = -1;                  // this attach's block (inner map of goro_procs)
    goro_proc_export* blk = nullptr;  // the loader's mapping of it
    int pidfd = -1;                   // the owning process: readable once it has exited
    uint32_t uid = 0;
  };
  struct Pending {
    int fd;
    uint64_t since_ms;
    uint32_t uid;
  };

  void run();
  void handle_hello(int fd, uint32_t peer_uid);
  void accept_batch();
  void free_slot(uint32_t slot);  // mu_ held
  // A new block for an attach of @slot, mapped; false with errno.
  bool new_block(uint32_t slot, int* fd, goro_proc_export** blk);
  void reply(int fd, int32_t status, uint32_t slot, uint64_t gen, int map_fd);

  Maps maps_{};
  uint32_t attach_flags_ = 0;
  Limits limits_;
  std::vector<Slot> slots_;
  std::vector<Pending> pending_;
  uint64_t accept_paused_until_ = 0;
  uint64_t next_gen_ = 0;
  int listen_fd_ = -1;
  int wake_fd_[2] = {-1, -1};
  std::thread thread_;
  std::mutex mu_;
};
