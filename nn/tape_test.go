package nn

import (
	"math"
	"testing"
)

// TestTapeReuseWithChangingGraph records graphs of different sizes on one Tape (as a
// last, smaller batch does) and checks every step against a fresh Tape.
func TestTapeReuseWithChangingGraph(t *testing.T) {
	m := newMLP(NewRand(1), (*Tape).Tanh, 5, 7, 3)
	reused := NewTape(Options{Workers: 2})
	for step, batch := range []int{8, 4, 8, 1, 16, 8} {
		x := randn(uint64(step), batch, 5)
		run := func(tp *Tape) (float32, []float32) {
			tp.Reset()
			l := tp.Mean(tp.Square(m.forward(tp, tp.Const(x))))
			tp.Backward(l)
			g := append([]float32(nil), m.layers[0].W.Grad.Data...)
			ZeroGrads(m.params())
			return l.Item(), g
		}
		l1, g1 := run(reused)
		l2, g2 := run(NewTape(Options{Workers: 2}))
		if l1 != l2 {
			t.Fatalf("step %d: loss %v on the reused tape, %v on a fresh one", step, l1, l2)
		}
		for i := range g1 {
			if g1[i] != g2[i] {
				t.Fatalf("step %d: gradient %d differs", step, i)
			}
		}
	}
}

// TestParamUsedTwice checks that gradients from two uses of one parameter add up.
func TestParamUsedTwice(t *testing.T) {
	p := NewParamFrom("p", FromData([]float32{1, 2, 3}, 3))
	tp := NewTape(DefaultOptions())
	a, b := tp.Param(p), tp.Param(p)
	tp.Backward(tp.Sum(tp.Mul(a, b))) // Σ p², gradient 2p
	assertClose(t, "gradient", p.Grad.Data, f64(2, 4, 6), 0)
}

func TestBackwardIgnoresConstants(t *testing.T) {
	tp := NewTape(DefaultOptions())
	c := tp.Const(FromData([]float32{1, 2}, 2))
	v := tp.Variable(FromData([]float32{3, 4}, 2))
	out := tp.Sum(tp.Mul(c, v))
	if tp.Sum(c).RequiresGrad() || !out.RequiresGrad() {
		t.Fatal("RequiresGrad is wrong")
	}
	tp.Backward(out)
	if c.Grad != nil {
		t.Fatal("a constant received a gradient")
	}
	assertClose(t, "variable gradient", v.Grad.Data, f64(1, 2), 0)
}

func TestLayers(t *testing.T) {
	rng := NewRand(3)
	mha := NewMultiHeadAttention("mha", 8, 2, rng)
	ln := NewLayerNorm("ln", 8)
	emb := NewEmbedding("emb", 10, 8, 0.1, rng)
	conv := NewConv2D("conv", 2, 3, 3, 1, 1, rng)
	tp := NewTape(DefaultOptions())
	e := tp.Reshape(emb.Forward(tp, []int{1, 2, 3, 4, 5, 6}), 2, 3, 8)
	y := ln.Forward(tp, mha.Forward(tp, e, e, nil))
	if !sameShape(y.Value.Shape, []int{2, 3, 8}) {
		t.Fatalf("attention block output %v", y.Value.Shape)
	}
	z := conv.Forward(tp, tp.Const(randn(4, 2, 2, 5, 5)))
	if !sameShape(z.Value.Shape, []int{2, 3, 5, 5}) {
		t.Fatalf("convolution output %v", z.Value.Shape)
	}
	tp.Backward(tp.Add(tp.Mean(tp.Square(y)), tp.Mean(z)))
	all := append(append(append(mha.Params(), ln.Params()...), emb.Params()...), conv.Params()...)
	names := map[string]bool{}
	for _, p := range all {
		if names[p.Name] {
			t.Fatalf("duplicate parameter name %q", p.Name)
		}
		names[p.Name] = true
		if !p.HasGrad() || !p.Grad.AllFinite() {
			t.Fatalf("%s: no finite gradient", p.Name)
		}
	}
	if rows, sparse := emb.Table.SparseRows(); !sparse || len(rows) != 6 {
		t.Fatalf("embedding rows %v (sparse %v)", rows, sparse)
	}
	// The block's gradient with respect to its input, against finite differences.
	gradcheck(t, func(tp *Tape, x ...*Node) *Node {
		return ln.Forward(tp, mha.Forward(tp, x[0], x[1], nil))
	}, randn(5, 2, 3, 8), randn(6, 2, 4, 8))
	if math.IsNaN(float64(y.Value.Data[0])) {
		t.Fatal("NaN output")
	}
}
