package nn

import "sync"

// parallelFor splits [0,n) into at most workers contiguous ranges of at least minPer
// items and runs fn(w, lo, hi) for each, range w on worker index w (0 on the calling
// goroutine). It returns when all are done. Callers keep results independent of the split:
// each item's result is computed by one range in a fixed order, and reductions across
// ranges, if any, happen afterwards in item order.
func parallelFor(workers, n, minPer int, fn func(w, lo, hi int)) {
	if n <= 0 {
		return
	}
	minPer = max(minPer, 1)
	w := min(workers, (n+minPer-1)/minPer)
	if w <= 1 {
		fn(0, 0, n)
		return
	}
	chunk := (n + w - 1) / w
	var wg sync.WaitGroup
	for i := 1; i < w; i++ {
		lo := i * chunk
		if lo >= n {
			break
		}
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, lo, hi)
		}()
	}
	fn(0, 0, min(chunk, n))
	wg.Wait()
}
