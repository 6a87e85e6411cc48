// Package nn is visrec's small deep-learning core: float32 tensors, a reverse-mode tape,
// the layers the batch-trained models need (dense, embedding, convolution, pooling,
// layer norm, attention), losses, optimizers, initialisers and a parameter file format.
//
// # Why our own
//
// The Go options measured on this kind of machine fell short: GoMLX's pure-Go backend has
// no convolution gradient and a slow matmul gradient (an MLP 256-512-256 ran 1.8 steps/s);
// gorgonia v0.9.18 trains MLPs and CNNs (23.9 and 7.6 steps/s on the benchmarks of
// bench_test.go) but is unmaintained since 2023 and needs a dependency bumped to run on
// current Go. Gorse keeps a small autograd of its own for the same reasons. This package is
// deliberately compact: every op is a forward function and a backward function, and every
// backward function is checked against finite differences (gradcheck_test.go).
//
// # Tensors
//
// A Tensor is a dense, row-major float32 array with a shape and no strides; ops that
// permute axes (Transpose, Permute) copy. Matrix products never transpose explicitly:
// Gemm, MatMulT and BatchedMatMul take transpose flags that the GEMM honours while reading.
//
// # The tape
//
// A Tape records ops as they run (define-by-run). Leaves are constants (Tape.Const), inputs
// that want a gradient (Tape.Variable) and parameters (Tape.Param). Backward walks the
// recorded nodes in reverse and accumulates ∂loss/∂x into Node.Grad, and into Param.Grad
// for parameters. Ops are methods of the Tape (t.MatMul(a, b), t.ReLU(x), ...) and panic on
// shape errors, which are programming errors.
//
// Memory reuse: a Tape owns arenas of nodes, tensor headers and float32/int32 buffers.
// Reset rewinds them; the next recording hands out the same buffers in the same order, so a
// training loop that records the same graph each step allocates only a few small closures
// per step after the first (TestTapeReuseAllocations). Everything an op returns is valid
// until the next Reset. Parameters live outside the arenas.
//
// Sparse gradients: Gather (embedding lookup) from a parameter adds its gradient only to
// the gathered rows and remembers them; optimizers then update only those rows (lazy
// momentum, Adagrad and Adam). Any dense use of the same parameter in a step makes its
// gradient dense.
//
// A Tape is used by one goroutine at a time; Params likewise.
//
// # Parallelism and determinism
//
// Large ops split their work across Options.Workers goroutines (default GOMAXPROCS):
// matrix products by rows or columns of the output (never along the summed dimension),
// convolutions by image, elementwise ops by element ranges, softmax and layer norm by row.
// Where an op sums across the split (a convolution's weight gradient over images), each
// part is formed separately and the parts are added in a fixed order afterwards. So the
// same seed gives bit-identical parameters whatever the worker count (TestDeterminism).
// Randomness (Dropout, initialisers) comes from seeded PCG generators, never a global one.
//
// # GEMM
//
// On amd64 with AVX2 and FMA, matrix products run in assembly micro-kernels (6×16 AVX2,
// or 8×32 AVX-512 where the CPU and OS support it) inside a cache-blocked driver that
// either packs operands (GotoBLAS style) or, for operands that fit in cache, reads them in
// place through strides. Each element of a product is one chain of fused multiply-adds in
// a fixed order, so the kernels agree bit for bit (tested). Elsewhere, products call
// gonum's pure-Go Sgemm (blas/gonum), which is several times slower; results then differ
// in the last bits from the FMA kernels, but remain deterministic on that machine.
//
// # Files
//
// Parameters are saved with WriteParams/SaveParams and read with ReadParams/LoadParams in
// a small versioned binary format (magic, version, per tensor name, shape and
// little-endian float32 data, CRC-32C) that round-trips bit-exactly; see io.go.
package nn
