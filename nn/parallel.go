package nn

import (
	"sync"
	"sync/atomic"
)

// chunksPerWorker is how many pieces parallelFor cuts its range into per worker, so
// that a worker whose thread is descheduled (a busy machine) holds up little: the others
// take its remaining pieces.
const chunksPerWorker = 4

// parallelFor cuts [0,n) into contiguous chunks of at least minPer items (at most
// chunksPerWorker per worker) and runs fn(w, lo, hi) on each, with up to workers
// goroutines (w is the index of the goroutine running the chunk, 0 for the calling
// goroutine, so fn may use per-worker scratch buffers). Chunks go to whichever goroutine
// is free. It returns when all are done.
//
// Callers keep results independent of the assignment: each item's result is computed by
// one chunk, in a fixed order, and reductions across chunks, if any, happen afterwards in
// item order.
func parallelFor(workers, n, minPer int, fn func(w, lo, hi int)) {
	if n <= 0 {
		return
	}
	minPer = max(minPer, 1)
	chunks := min((n+minPer-1)/minPer, workers*chunksPerWorker)
	w := min(workers, chunks)
	if w <= 1 {
		fn(0, 0, n)
		return
	}
	size := (n + chunks - 1) / chunks
	chunks = (n + size - 1) / size
	var next atomic.Int64
	run := func(wi int) {
		for {
			c := int(next.Add(1)) - 1
			if c >= chunks {
				return
			}
			lo := c * size
			fn(wi, lo, min(lo+size, n))
		}
	}
	var wg sync.WaitGroup
	for i := 1; i < w; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(i)
		}()
	}
	run(0)
	wg.Wait()
}
