//go:build !amd64 || purego

package nn

import "unsafe"

// useAsmGemm is false off amd64 (and with the purego build tag): gemm calls gonum's Sgemm.
const useAsmGemm = false

// defaultKernel is the pure-Go kernel, for completeness (gemm does not call it).
func defaultKernel() microKernel { return microKernel{mr: 6, nr: 16, fn: kernel6x16} }

// kernel6x16 is the pure-Go form of the amd64 micro-kernel; gemm does not call it off
// amd64, it exists so that the package builds everywhere.
func kernel6x16(k int, a *float32, ai, ap int, b *float32, bp int, c *float32, ldc int, add bool) {
	if k == 0 {
		return
	}
	as := unsafe.Slice(a, (6-1)*ai+(k-1)*ap+1)
	bs := unsafe.Slice(b, (k-1)*bp+16)
	var acc [6 * 16]float32
	for p := 0; p < k; p++ {
		for i := 0; i < 6; i++ {
			av := as[i*ai+p*ap]
			for j := 0; j < 16; j++ {
				acc[i*16+j] += av * bs[p*bp+j]
			}
		}
	}
	cs := unsafe.Slice(c, (6-1)*ldc+16)
	for i := 0; i < 6; i++ {
		for j := 0; j < 16; j++ {
			if add {
				cs[i*ldc+j] += acc[i*16+j]
			} else {
				cs[i*ldc+j] = acc[i*16+j]
			}
		}
	}
}

// addToAVX is never called off amd64.
func addToAVX(dst, src *float32, n int) { panic("nn: addToAVX off amd64") }

func reluAVX(y, x *float32, n int)             { panic("nn: reluAVX off amd64") }
func reluBackAVX(ga, gr, y *float32, n int)    { panic("nn: reluBackAVX off amd64") }
func reluBackSetAVX(ga, gr, y *float32, n int) { panic("nn: reluBackSetAVX off amd64") }
func sum8AVX(x *float32, n int, s *[8]float32) { panic("nn: sum8AVX off amd64") }

func maxPool2x2AVX(r0, r1 *float32, out *float32, arg *int32, n, i0, w int) {
	panic("nn: maxPool2x2AVX off amd64")
}
