// SPDX-License-Identifier: BSD-3-Clause
// Workload "select": K producer goroutines (K = 2 or 4), one per channel of
// capacity CAP, each send N/K ints; one consumer selects over the K
// channels until it has received them all. Mirrors goro_workloads select.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	n, k, cp := 1000000, 2, 0
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		k, _ = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) > 3 {
		cp, _ = strconv.Atoi(os.Args[3])
	}
	if k != 2 && k != 4 {
		fmt.Fprintln(os.Stderr, "select: K must be 2 or 4")
		os.Exit(2)
	}
	per := n / k
	cs := make([]chan int, k)
	for i := range cs {
		cs[i] = make(chan int, cp)
	}
	start := time.Now()
	for i := 0; i < k; i++ {
		go func(c chan int) {
			for j := 0; j < per; j++ {
				c <- j
			}
		}(cs[i])
	}
	var s int64
	total := per * k
	if k == 2 {
		for j := 0; j < total; j++ {
			select {
			case v := <-cs[0]:
				s += int64(v)
			case v := <-cs[1]:
				s += int64(v)
			}
		}
	} else {
		for j := 0; j < total; j++ {
			select {
			case v := <-cs[0]:
				s += int64(v)
			case v := <-cs[1]:
				s += int64(v)
			case v := <-cs[2]:
				s += int64(v)
			case v := <-cs[3]:
				s += int64(v)
			}
		}
	}
	ns := time.Since(start).Nanoseconds()
	if want := int64(k) * int64(per) * int64(per-1) / 2; s != want {
		fmt.Fprintf(os.Stderr, "select: got %d want %d\n", s, want)
		os.Exit(1)
	}
	fmt.Printf("RESULT name=select ns=%d n=%d k=%d cap=%d procs=%d\n", ns, total, k, cp, runtime.GOMAXPROCS(0))
}
