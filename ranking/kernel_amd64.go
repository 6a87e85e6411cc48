package ranking

import "golang.org/x/sys/cpu"

// useAVX selects the AVX2+FMA kernels of kernel_amd64.s.
var useAVX = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// hasAVX512 tells whether the CPU has AVX-512F (for matvecTAVX512).
var hasAVX512 = cpu.X86.HasAVX512F

// kernelModes are the kernel sets setKernels can select on this CPU: 0 Go and gonum, 1
// AVX2, 2 AVX2 with AVX-512 for column-major blocks.
func kernelModes() []int {
	switch {
	case useAVX && hasAVX512:
		return []int{0, 1, 2}
	case useAVX:
		return []int{0, 1}
	}
	return []int{0}
}

// setKernels selects a kernel set (tests of each); it returns the previous one.
func setKernels(mode int) int {
	prev := 0
	if useAVX {
		prev = 1
	}
	if useAVX512 {
		prev = 2
	}
	useAVX, useAVX512 = mode >= 1, mode >= 2
	return prev
}

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

// useAVX512 selects matvecTAVX512 for column-major blocks.
var useAVX512 = useAVX && hasAVX512

// matvecTAVX512 is matvecTAVX for 128 rows with 16-lane registers (same sums).
//
//go:noescape
func matvecTAVX512(a *float32, x *float32, dim int, dst *float32, stride int)

// firstAboveAVX returns the first i < n with !(s[i] <= bar), or n.
//
//go:noescape
func firstAboveAVX(s *float32, n int, bar float32) int
