//go:build !amd64 || purego

package nn

// testKernels lists the micro-kernels to compare; off amd64 gemm uses gonum only.
func testKernels() []microKernel { return nil }
