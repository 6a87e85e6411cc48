package nn

import "golang.org/x/sys/cpu"

// useAsmGemm selects the assembly micro-kernel. It is fixed at start-up from the CPU's
// features (a constant for the life of the process).
var useAsmGemm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernel6x16 adds the product of a packed 6×k panel of A (a[p·6+i]) and a packed k×16
// panel of B (b[p·16+j]) to the 6×16 tile of C at c with row stride ldc (elements):
// c[i·ldc+j] += Σ_p a[p·6+i]·b[p·16+j], the sum formed in registers in order of p (with
// fused multiply-adds) and then added to C. The caller guarantees the bounds.
//
//go:noescape
func kernel6x16(k int, a, b, c *float32, ldc int)
