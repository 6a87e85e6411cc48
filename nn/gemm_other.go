//go:build !amd64

package nn

import "unsafe"

// useAsmGemm is false off amd64: gemm calls gonum's Sgemm.
const useAsmGemm = false

// kernel6x16 is the pure-Go form of the amd64 micro-kernel; gemm does not call it off
// amd64, it exists so that the package builds everywhere.
func kernel6x16(k int, a, b, c *float32, ldc int) {
	as := unsafe.Slice(a, k*gemmMR)
	bs := unsafe.Slice(b, k*gemmNR)
	var acc [gemmMR * gemmNR]float32
	for p := 0; p < k; p++ {
		for i := 0; i < gemmMR; i++ {
			av := as[p*gemmMR+i]
			for j := 0; j < gemmNR; j++ {
				acc[i*gemmNR+j] += av * bs[p*gemmNR+j]
			}
		}
	}
	cs := unsafe.Slice(c, (gemmMR-1)*ldc+gemmNR)
	for i := 0; i < gemmMR; i++ {
		for j := 0; j < gemmNR; j++ {
			cs[i*ldc+j] += acc[i*gemmNR+j]
		}
	}
}
