// SPDX-License-Identifier: BSD-3-Clause
// Workload "park": park N goroutines (default 100k) on one channel and report
// the resident memory they cost (VmRSS after - before, KiB per G) and the
// peak (VmHWM). Mirrors goro_workloads park.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func statusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, field+":") {
			fs := strings.Fields(line[len(field)+1:])
			v, _ := strconv.ParseInt(fs[0], 10, 64)
			return v
		}
	}
	return -1
}

func main() {
	n := 100000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	c := make(chan int)
	var started, finished sync.WaitGroup
	before := statusKB("VmRSS")
	start := time.Now()
	started.Add(n)
	finished.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-c
			finished.Done()
		}()
	}
	started.Wait()
	for i := 0; i < 100; i++ {
		runtime.Gosched()
	}
	ns := time.Since(start).Nanoseconds()
	after := statusKB("VmRSS")
	hwm := statusKB("VmHWM")
	alive := runtime.NumGoroutine()
	close(c)
	finished.Wait()
	delta := after - before
	fmt.Printf("RESULT name=park ns=%d n=%d procs=%d rss_before_kb=%d rss_kb=%d hwm_kb=%d alive=%d kb_per_g=%.3f\n",
		ns, n, runtime.GOMAXPROCS(0), before, delta, hwm, alive, float64(delta)/float64(n))
}
