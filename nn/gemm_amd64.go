package nn

import "golang.org/x/sys/cpu"

// useAsmGemm selects the assembly micro-kernel. It is fixed at start-up from the CPU's
// features (a constant for the life of the process).
var useAsmGemm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernel6x16 computes the product of a 6×k panel of A and a k×16 panel of B into the 6×16
// tile of C at c with row stride ldc: s[i][j] = Σ_p a[i·ai+p·ap]·b[p·bp+j], formed in
// registers in order of p with fused multiply-adds, then c[i·ldc+j] += s[i][j] when add is
// set, c[i·ldc+j] = s[i][j] otherwise. Strides are in elements: a packed panel has ai = 1,
// ap = 6 and bp = 16; a row-major operand is read in place with ai = lda, ap = 1, or
// bp = ldb. The caller guarantees the bounds.
//
//go:noescape
func kernel6x16(k int, a *float32, ai, ap int, b *float32, bp int, c *float32, ldc int, add bool)

// addToAVX sets dst[i] += src[i] for i < n; n is a multiple of 8.
//
//go:noescape
func addToAVX(dst, src *float32, n int)
