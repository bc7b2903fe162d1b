// SPDX-License-Identifier: BSD-3-Clause
// Workload "echo": a loopback TCP echo server and its load generator in the
// same process. C client goroutines each open one connection to
// 127.0.0.1 and send R/C requests of SIZE bytes one at a time, each
// waiting for its full echo; the server echoes whatever it reads on each
// connection in a goroutine of its own. Reports requests/s over the
// measured phase (all connections open; from the first request to the last
// echo) and the per-request latency p50/p99/max. Bounded: a client stops
// early after LIMIT_MS (then n is the number of requests done).
// Mirrors goro_workloads echo.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

func pct(v []int64, p float64) int64 {
	if len(v) == 0 {
		return 0
	}
	i := int(p * float64(len(v)))
	if i >= len(v) {
		i = len(v) - 1
	}
	return v[i]
}

func main() {
	r, c, size, limitMs := 20000, 1, 64, 20000
	if len(os.Args) > 1 {
		r, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		c, _ = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) > 3 {
		size, _ = strconv.Atoi(os.Args[3])
	}
	if len(os.Args) > 4 {
		limitMs, _ = strconv.Atoi(os.Args[4])
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo: listen:", err)
		os.Exit(1)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				buf := make([]byte, 4096)
				for {
					k, err := conn.Read(buf)
					if k > 0 {
						if _, werr := conn.Write(buf[:k]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				conn.Close()
			}(conn)
		}
	}()
	addr := ln.Addr().String()
	per := r / c
	conns := make([]net.Conn, c)
	for i := range conns {
		conns[i], err = net.Dial("tcp4", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo: dial:", err)
			os.Exit(1)
		}
	}
	lat := make([][]int64, c)
	var wg sync.WaitGroup
	startc := make(chan struct{})
	limit := time.Duration(limitMs) * time.Millisecond
	wg.Add(c)
	for i := 0; i < c; i++ {
		go func(i int) {
			defer wg.Done()
			conn := conns[i]
			out := make([]byte, size)
			in := make([]byte, size)
			for j := range out {
				out[j] = byte(i + j)
			}
			l := make([]int64, 0, per)
			<-startc
			t0 := time.Now()
			for j := 0; j < per; j++ {
				t := time.Now()
				if t.Sub(t0) > limit {
					break
				}
				if _, err := conn.Write(out); err != nil {
					fmt.Fprintln(os.Stderr, "echo: write:", err)
					os.Exit(1)
				}
				if _, err := io.ReadFull(conn, in); err != nil {
					fmt.Fprintln(os.Stderr, "echo: read:", err)
					os.Exit(1)
				}
				l = append(l, time.Since(t).Nanoseconds())
			}
			if in[0] != out[0] || in[size-1] != out[size-1] {
				fmt.Fprintln(os.Stderr, "echo: wrong echo")
				os.Exit(1)
			}
			lat[i] = l
		}(i)
	}
	start := time.Now()
	close(startc)
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	for _, conn := range conns {
		conn.Close()
	}
	ln.Close()
	var all []int64
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	fmt.Printf("RESULT name=echo ns=%d n=%d conns=%d size=%d procs=%d p50_ns=%d p99_ns=%d max_ns=%d\n",
		ns, len(all), c, size, runtime.GOMAXPROCS(0), pct(all, 0.50), pct(all, 0.99), pct(all, 1.0))
}
