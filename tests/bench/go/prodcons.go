// SPDX-License-Identifier: BSD-3-Clause
// Workload "prodcons": one producer sends N ints into a channel with capacity
// 100, one consumer receives and sums them. Mirrors goro_workloads prodcons.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	c := make(chan int, 100)
	res := make(chan int64)
	start := time.Now()
	go func() {
		var s int64
		for v := range c {
			s += int64(v)
		}
		res <- s
	}()
	for i := 0; i < n; i++ {
		c <- i
	}
	close(c)
	s := <-res
	ns := time.Since(start).Nanoseconds()
	if want := int64(n) * int64(n-1) / 2; s != want {
		fmt.Fprintf(os.Stderr, "prodcons: got %d want %d\n", s, want)
		os.Exit(1)
	}
	fmt.Printf("RESULT name=prodcons ns=%d n=%d procs=%d\n", ns, n, runtime.GOMAXPROCS(0))
}
