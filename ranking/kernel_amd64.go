package ranking

import "golang.org/x/sys/cpu"

// useAVX selects the AVX2+FMA kernels of kernel_amd64.s.
var useAVX = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// setAVX switches the kernels (tests of both).
func setAVX(on bool) { useAVX = on }

// dot4AVX writes to dst[0..3] the dot products of x with the four rows of n floats at a,
// a+stride bytes, a+2·stride, a+3·stride.
//
//go:noescape
func dot4AVX(a *float32, stride int, x *float32, n int, dst *float32)

// dotAVX returns the dot product of the n floats at a and x, summed as dot4AVX sums a row.
//
//go:noescape
func dotAVX(a, x *float32, n int) float32

// matvecTAVX scores the 64 rows of a column-major block starting at a (stride bytes between
// elements k and k+1 of a row) against x, into dst[0..63].
//
//go:noescape
func matvecTAVX(a *float32, x *float32, dim int, dst *float32, stride int)

// dotStridedAVX is one column-major row's score, summed as matvecTAVX sums it.
//
//go:noescape
func dotStridedAVX(a *float32, stride int, x *float32, n int) float32
