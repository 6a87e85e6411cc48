//go:build amd64 && !purego

package nn

import (
	"math"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestConvPathsAgree runs the convolution on packed operands (the assembly kernels) and
// through im2col and gonum (the portable path) and compares outputs and gradients; the
// assembly kernels must agree bit for bit.
func TestConvPathsAgree(t *testing.T) {
	if !useAsmGemm {
		t.Skip("no assembly kernel on this CPU")
	}
	cases := []struct {
		x, w        []int
		stride, pad int
	}{
		{[]int{3, 5, 9, 11}, []int{7, 5, 3, 3}, 1, 1},
		{[]int{2, 3, 10, 7}, []int{4, 3, 3, 2}, 2, 1},
		{[]int{2, 30, 6, 6}, []int{17, 30, 3, 3}, 1, 0}, // K = 270 spans two depth blocks
		{[]int{1, 2, 20, 20}, []int{3, 2, 5, 5}, 3, 2},
	}
	for _, c := range cases {
		run := func(asm bool) []*Tensor {
			defer func(v bool) { useAsmGemm = v }(useAsmGemm)
			useAsmGemm = asm
			tp := NewTape(Options{Workers: 2})
			x, w, b := tp.Variable(randn(1, c.x...)), tp.Variable(randn(2, c.w...)), tp.Variable(randn(3, c.w[0]))
			out := tp.Conv2D(x, w, b, c.stride, c.pad)
			tp.BackwardFrom(out, randn(4, out.Value.Shape...))
			return []*Tensor{out.Value.Clone(), x.Grad.Clone(), w.Grad.Clone(), b.Grad.Clone()}
		}
		want, got := run(false), run(true)
		// The packed path gives the same bits with every micro-kernel.
		for _, kn := range testKernels() {
			old := setKernel(kn)
			again := run(true)
			setKernel(old)
			for i := range got {
				for j, v := range again[i].Data {
					if math.Float32bits(v) != math.Float32bits(got[i].Data[j]) {
						t.Fatalf("%v: kernel %dx%d changes tensor %d element %d", c, kn.mr, kn.nr, i, j)
					}
				}
			}
		}
		for i := range want {
			for j := range want[i].Data {
				a, e := float64(got[i].Data[j]), float64(want[i].Data[j])
				if math.Abs(a-e) > 1e-4*(1+math.Abs(e)) {
					t.Fatalf("%v: tensor %d element %d: packed %v, plain %v", c, i, j, a, e)
				}
			}
		}
	}
}

// testKernels lists the micro-kernels this CPU can run.
func testKernels() []microKernel {
	if !useAsmGemm {
		return nil
	}
	ks := []microKernel{kernelAVX2}
	if cpu.X86.HasAVX512F {
		ks = append(ks, kernelAVX512)
	}
	return ks
}
