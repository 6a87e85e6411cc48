//go:build amd64 && !purego

package nn

import "golang.org/x/sys/cpu"

// useAsmGemm selects the assembly micro-kernels (AVX2 and FMA at least). It is fixed at
// start-up from the CPU's features (a constant for the life of the process, but for tests
// of the portable path).
var useAsmGemm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// The assembly micro-kernels.
var (
	kernelAVX2   = microKernel{mr: 6, nr: 16, fn: kernel6x16}
	kernelAVX512 = microKernel{mr: 8, nr: 32, fn: kernel8x32}
)

// defaultKernel picks the widest kernel the CPU (and OS) support.
func defaultKernel() microKernel {
	if useAsmGemm && cpu.X86.HasAVX512F {
		return kernelAVX512
	}
	return kernelAVX2
}

// kernel6x16 computes the product of a 6×k panel of A and a k×16 panel of B into the 6×16
// tile of C at c with row stride ldc: s[i][j] = Σ_p a[i·ai+p·ap]·b[p·bp+j], formed in
// registers in order of p with fused multiply-adds, then c[i·ldc+j] += s[i][j] when add is
// set, c[i·ldc+j] = s[i][j] otherwise. Strides are in elements: a packed panel has ai = 1,
// ap = 6 and bp = 16; a row-major operand is read in place with ai = lda, ap = 1, or
// bp = ldb. The caller guarantees the bounds.
//
//go:noescape
func kernel6x16(k int, a *float32, ai, ap int, b *float32, bp int, c *float32, ldc int, add bool)

// kernel8x32 is the AVX-512 micro-kernel: kernel6x16 on an 8×32 tile.
//
//go:noescape
func kernel8x32(k int, a *float32, ai, ap int, b *float32, bp int, c *float32, ldc int, add bool)

// addToAVX sets dst[i] += src[i] for i < n; n is a multiple of 8.
//
//go:noescape
func addToAVX(dst, src *float32, n int)

// reluAVX and reluBackAVX are the ReLU loops of unaryRun and unaryBack, 8 elements at a
// time (n a multiple of 8); they compute the same bits.
//
//go:noescape
func reluAVX(y, x *float32, n int)

//go:noescape
func reluBackAVX(ga, gr, y *float32, n int)

// reluBackSetAVX is reluBackAVX storing into a fresh gradient buffer instead of adding.
//
//go:noescape
func reluBackSetAVX(ga, gr, y *float32, n int)

// sum8AVX adds x[i] to s[i mod 8] for i < n (n a multiple of 8), in order of i.
//
//go:noescape
func sum8AVX(x *float32, n int, s *[8]float32)

// maxPool2x2AVX is maxPool2x2's inner loop for n outputs of one row (n a multiple of 8);
// it computes the same values and indices.
//
//go:noescape
func maxPool2x2AVX(r0, r1 *float32, out *float32, arg *int32, n, i0, w int)
