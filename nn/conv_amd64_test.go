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

// TestMaxPoolAVXMatchesGo compares the vector 2×2 max-pool with the Go loop, bit for bit,
// on rows long enough for the vector path, with ties and special values.
func TestMaxPoolAVXMatchesGo(t *testing.T) {
	if !useAsmGemm {
		t.Skip("no AVX2")
	}
	x := randn(9, 2, 3, 7, 37)
	specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1, 1, 1, -2, -2}
	rng := NewRand(10)
	for i := 0; i < 200; i++ {
		x.Data[rng.IntN(len(x.Data))] = specials[rng.IntN(len(specials))]
	}
	run := func(asm bool) (*Tensor, []int32) {
		defer func(v bool) { useAsmGemm = v }(useAsmGemm)
		useAsmGemm = asm
		tp := NewTape(Options{Workers: 1})
		y := tp.MaxPool2D(tp.Const(x), 2, 2)
		return y.Value.Clone(), append([]int32(nil), y.idx...)
	}
	want, wantIdx := run(false)
	got, gotIdx := run(true)
	for i := range want.Data {
		if math.Float32bits(got.Data[i]) != math.Float32bits(want.Data[i]) || gotIdx[i] != wantIdx[i] {
			t.Fatalf("output %d: %v at %d, want %v at %d", i, got.Data[i], gotIdx[i], want.Data[i], wantIdx[i])
		}
	}
}
