// Package parallel runs loops on all cores while keeping results
// independent of the number of cores and of scheduling.
//
// Determinism (TRAIN-6) comes from the caller's side of the contract: work is
// split into blocks whose boundaries depend only on the problem size, each
// block writes only its own output slot, and any reduction over blocks is done
// afterwards in block order. Goroutine count only changes the wall time.
package parallel

import (
	"runtime"
	"sync"
)

// Blocks splits [0, n) into at most maxBlocks contiguous blocks of at least
// minBlock items. The split depends only on n, maxBlocks and minBlock.
func Blocks(n, minBlock, maxBlocks int) [][2]int {
	if n <= 0 {
		return nil
	}
	if minBlock < 1 {
		minBlock = 1
	}
	k := n / minBlock
	if k > maxBlocks {
		k = maxBlocks
	}
	if k < 1 {
		k = 1
	}
	out := make([][2]int, k)
	for i := range k {
		out[i] = [2]int{i * n / k, (i + 1) * n / k}
	}
	return out
}

// Run calls fn(i) for every i in [0, n) on up to GOMAXPROCS goroutines.
// fn must only write state owned by index i.
func Run(n int, fn func(i int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// Workers is the number of goroutines Run uses.
func Workers() int { return runtime.GOMAXPROCS(0) }
