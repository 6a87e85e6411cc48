package nn

import (
	"math"
	"testing"
)

// Forward values against float64 references and hand-computed cases. (TestGradients
// checks each gradient against its forward pass; these check the forward pass itself.)

func assertClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		g := float64(got[i])
		if math.IsNaN(g) != math.IsNaN(want[i]) || math.Abs(g-want[i]) > tol*(1+math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, g, want[i])
		}
	}
}

func f64(xs ...float64) []float64 { return xs }

func TestMatMulForward(t *testing.T) {
	tp := NewTape(DefaultOptions())
	a, b := randn(1, 7, 19), randn(2, 19, 23)
	got := tp.MatMul(tp.Const(a), tp.Const(b)).Value
	want := refGemm(false, false, 7, 23, 19, 1, a.Data, 19, b.Data, 23, 0, make([]float32, 7*23), 23)
	assertClose(t, "MatMul", got.Data, want, 1e-5)
	bt := randn(3, 23, 19)
	got = tp.MatMulT(tp.Const(a), tp.Const(bt)).Value
	want = refGemm(false, true, 7, 23, 19, 1, a.Data, 19, bt.Data, 19, 0, make([]float32, 7*23), 23)
	assertClose(t, "MatMulT", got.Data, want, 1e-5)
	if !sameShape(tp.MatMul(tp.Const(randn(4, 2, 3, 19)), tp.Const(b)).Value.Shape, []int{2, 3, 23}) {
		t.Fatal("MatMul of a 3-D input has the wrong shape")
	}
}

func TestBroadcastForward(t *testing.T) {
	tp := NewTape(DefaultOptions())
	col := FromData([]float32{1, 2, 3}, 3, 1)
	row := FromData([]float32{10, 20}, 1, 2)
	cases := []struct {
		name  string
		got   *Node
		shape []int
		want  []float64
	}{
		{"outer add", tp.Add(tp.Const(col), tp.Const(row)), []int{3, 2}, f64(11, 21, 12, 22, 13, 23)},
		{"outer sub", tp.Sub(tp.Const(row), tp.Const(col)), []int{3, 2}, f64(9, 19, 8, 18, 7, 17)},
		{"bias mul", tp.Mul(tp.Const(FromData([]float32{1, 2, 3, 4}, 2, 2)), tp.Const(FromData([]float32{2, 3}, 2))), []int{2, 2}, f64(2, 6, 6, 12)},
		{"scalar div", tp.Div(tp.Const(FromData([]float32{1, 2, 3, 4}, 2, 2)), tp.Const(Scalar(2))), []int{2, 2}, f64(0.5, 1, 1.5, 2)},
		{"rank up", tp.Add(tp.Const(FromData([]float32{1, 2}, 2)), tp.Const(New(2, 2, 2))), []int{2, 2, 2}, f64(1, 2, 1, 2, 1, 2, 1, 2)},
	}
	for _, c := range cases {
		if !sameShape(c.got.Value.Shape, c.shape) {
			t.Fatalf("%s: shape %v, want %v", c.name, c.got.Value.Shape, c.shape)
		}
		assertClose(t, c.name, c.got.Value.Data, c.want, 0)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("incompatible shapes did not panic")
		}
	}()
	tp.Add(tp.Const(New(2, 3)), tp.Const(New(2)))
}

func TestUnaryForward(t *testing.T) {
	xs := []float32{-100, -20, -1.5, -0.25, 0, 0.25, 1.5, 20, 100}
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	sp := func(x float64) float64 { return math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }
	cases := []struct {
		name string
		op   func(*Tape, *Node) *Node
		ref  func(float64) float64
	}{
		{"Sigmoid", (*Tape).Sigmoid, sig},
		{"ReLU", (*Tape).ReLU, func(x float64) float64 { return math.Max(x, 0) }},
		{"Tanh", (*Tape).Tanh, math.Tanh},
		{"Softplus", (*Tape).Softplus, sp},
		{"LogSigmoid", (*Tape).LogSigmoid, func(x float64) float64 { return -sp(-x) }},
		{"Neg", (*Tape).Neg, func(x float64) float64 { return -x }},
		{"Square", (*Tape).Square, func(x float64) float64 { return x * x }},
		{"Abs", (*Tape).Abs, math.Abs},
	}
	x := FromData(xs, len(xs))
	for _, c := range cases {
		tp := NewTape(DefaultOptions())
		got := c.op(tp, tp.Const(x)).Value.Data
		want := make([]float64, len(xs))
		for i, v := range xs {
			want[i] = c.ref(float64(v))
		}
		assertClose(t, c.name, got, want, 1e-6)
		for _, v := range got {
			if math.IsNaN(float64(v)) {
				t.Fatalf("%s produced NaN", c.name)
			}
		}
	}
	pos := FromData([]float32{0.5, 1, 4}, 3)
	tp := NewTape(DefaultOptions())
	assertClose(t, "Exp", tp.Exp(tp.Const(pos)).Value.Data, f64(math.Exp(0.5), math.E, math.Exp(4)), 1e-6)
	assertClose(t, "Log", tp.Log(tp.Const(pos)).Value.Data, f64(math.Log(0.5), 0, math.Log(4)), 1e-6)
	assertClose(t, "Sqrt", tp.Sqrt(tp.Const(pos)).Value.Data, f64(math.Sqrt(0.5), 1, 2), 1e-6)
}

func TestSoftmaxForward(t *testing.T) {
	tp := NewTape(DefaultOptions())
	x := FromData([]float32{1, 2, 3, 1000, 1000, -1000}, 2, 3)
	got := tp.Softmax(tp.Const(x)).Value.Data
	e := []float64{math.Exp(-2), math.Exp(-1), 1}
	s := e[0] + e[1] + e[2]
	assertClose(t, "Softmax", got, f64(e[0]/s, e[1]/s, e[2]/s, 0.5, 0.5, 0), 1e-6)

	mask := FromData([]float32{1, 0, 1, 0, 0, 0}, 2, 3)
	got = tp.MaskedSoftmax(tp.Const(x), mask).Value.Data
	e2 := 1 / (math.Exp(-2) + 1)
	assertClose(t, "MaskedSoftmax", got, f64(math.Exp(-2)*e2, 0, e2, 0, 0, 0), 1e-6)

	// A mask broadcast from [1,3]: the same positions in every row.
	got = tp.MaskedSoftmax(tp.Const(x), FromData([]float32{0, 1, 1}, 1, 3)).Value.Data
	assertClose(t, "MaskedSoftmax broadcast", got, f64(0, math.Exp(-1)/(math.Exp(-1)+1), 1/(math.Exp(-1)+1), 0, 1, 0), 1e-6)

	ls := tp.LogSoftmax(tp.Const(x)).Value.Data
	assertClose(t, "LogSoftmax", ls[:3], f64(math.Log(e[0]/s), math.Log(e[1]/s), math.Log(e[2]/s)), 1e-6)
	if ls[5] != -2000-float32(math.Log(2)) {
		t.Fatalf("LogSoftmax of a far-off logit = %v", ls[5])
	}
}

func TestShapeOpsForward(t *testing.T) {
	tp := NewTape(DefaultOptions())
	a := FromData([]float32{0, 1, 2, 3, 4, 5}, 2, 3)
	b := FromData([]float32{6, 7}, 2, 1)
	cases := []struct {
		name  string
		got   *Node
		shape []int
		want  []float64
	}{
		{"Transpose", tp.Transpose(tp.Const(a)), []int{3, 2}, f64(0, 3, 1, 4, 2, 5)},
		{"Concat1", tp.Concat(1, tp.Const(a), tp.Const(b)), []int{2, 4}, f64(0, 1, 2, 6, 3, 4, 5, 7)},
		{"Concat0", tp.Concat(0, tp.Const(a), tp.Const(a)), []int{4, 3}, f64(0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5)},
		{"Slice", tp.Slice(tp.Const(a), 1, 1, 3), []int{2, 2}, f64(1, 2, 4, 5)},
		{"Reshape", tp.Reshape(tp.Const(a), -1), []int{6}, f64(0, 1, 2, 3, 4, 5)},
		{"Gather", tp.Gather(tp.Const(a), []int{1, 1, 0}), []int{3, 3}, f64(3, 4, 5, 3, 4, 5, 0, 1, 2)},
		{"Sum", tp.Sum(tp.Const(a)), []int{1}, f64(15)},
		{"Mean", tp.Mean(tp.Const(a)), []int{1}, f64(2.5)},
		{"SumAxis0", tp.SumAxis(tp.Const(a), 0), []int{3}, f64(3, 5, 7)},
		{"MeanAxis1", tp.MeanAxis(tp.Const(a), 1), []int{2}, f64(1, 4)},
		{"Permute", tp.Permute(tp.Const(FromData([]float32{0, 1, 2, 3, 4, 5, 6, 7}, 2, 2, 2)), 2, 0, 1), []int{2, 2, 2}, f64(0, 2, 4, 6, 1, 3, 5, 7)},
	}
	for _, c := range cases {
		if !sameShape(c.got.Value.Shape, c.shape) {
			t.Fatalf("%s: shape %v, want %v", c.name, c.got.Value.Shape, c.shape)
		}
		assertClose(t, c.name, c.got.Value.Data, c.want, 0)
	}
}

func TestLayerNormForward(t *testing.T) {
	tp := NewTape(DefaultOptions())
	x := randn(5, 4, 16)
	y := tp.LayerNorm(tp.Const(x), nil, nil, 0).Value
	for r := 0; r < 4; r++ {
		var s, ss float64
		for _, v := range y.Data[r*16 : (r+1)*16] {
			s += float64(v)
			ss += float64(v) * float64(v)
		}
		if math.Abs(s/16) > 1e-6 || math.Abs(ss/16-1) > 1e-5 {
			t.Fatalf("row %d: mean %v, variance %v", r, s/16, ss/16)
		}
	}
}

func TestDropoutForward(t *testing.T) {
	x := New(100, 100)
	x.Fill(1)
	tp := NewTape(Options{Seed: 3})
	y := tp.Dropout(tp.Const(x), 0.25).Value
	zeros := 0
	for _, v := range y.Data {
		switch v {
		case 0:
			zeros++
		case 1 / 0.75:
		default:
			t.Fatalf("dropout value %v", v)
		}
	}
	if zeros < 2300 || zeros > 2700 {
		t.Fatalf("%d of 10000 dropped, want about 2500", zeros)
	}
	tp.SetTraining(false)
	in := tp.Const(x)
	if tp.Dropout(in, 0.25) != in {
		t.Fatal("Dropout in evaluation mode is not the identity")
	}
}

// naiveConv is a direct float64 convolution.
func naiveConv(x, w, b *Tensor, stride, pad int) []float64 {
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	f, kh, kw := w.Shape[0], w.Shape[2], w.Shape[3]
	oh, ow := (h+2*pad-kh)/stride+1, (wd+2*pad-kw)/stride+1
	out := make([]float64, 0, n*f*oh*ow)
	for i := 0; i < n; i++ {
		for o := 0; o < f; o++ {
			for y := 0; y < oh; y++ {
				for z := 0; z < ow; z++ {
					var s float64
					if b != nil {
						s = float64(b.Data[o])
					}
					for ch := 0; ch < c; ch++ {
						for ky := 0; ky < kh; ky++ {
							for kx := 0; kx < kw; kx++ {
								iy, ix := y*stride-pad+ky, z*stride-pad+kx
								if iy >= 0 && iy < h && ix >= 0 && ix < wd {
									s += float64(x.At(i, ch, iy, ix)) * float64(w.At(o, ch, ky, kx))
								}
							}
						}
					}
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func TestConv2DForward(t *testing.T) {
	cases := []struct {
		x, w        []int
		stride, pad int
	}{
		{[]int{2, 3, 8, 8}, []int{4, 3, 3, 3}, 1, 1},
		{[]int{3, 2, 7, 9}, []int{5, 2, 3, 2}, 2, 1},
		{[]int{1, 1, 5, 5}, []int{1, 1, 5, 5}, 1, 0},
		{[]int{4, 3, 6, 5}, []int{2, 3, 1, 1}, 1, 0},
		{[]int{2, 2, 9, 9}, []int{3, 2, 3, 3}, 3, 2},
	}
	for _, c := range cases {
		x, w, b := randn(1, c.x...), randn(2, c.w...), randn(3, c.w[0])
		for _, workers := range []int{1, 3} {
			tp := NewTape(Options{Workers: workers})
			got := tp.Conv2D(tp.Const(x), tp.Const(w), tp.Const(b), c.stride, c.pad).Value
			assertClose(t, "Conv2D", got.Data, naiveConv(x, w, b, c.stride, c.pad), 1e-5)
		}
	}
}

func TestPoolForward(t *testing.T) {
	x := FromData([]float32{
		1, 5, 2, 0,
		3, 4, 8, 1,
		0, 2, 7, 6,
		9, 1, 3, 3,
	}, 1, 1, 4, 4)
	tp := NewTape(DefaultOptions())
	assertClose(t, "MaxPool2D", tp.MaxPool2D(tp.Const(x), 2, 2).Value.Data, f64(5, 8, 9, 7), 0)
	assertClose(t, "AvgPool2D", tp.AvgPool2D(tp.Const(x), 2, 2).Value.Data, f64(3.25, 2.75, 3, 4.75), 0)
	assertClose(t, "MaxPool2D overlapping", tp.MaxPool2D(tp.Const(x), 3, 1).Value.Data, f64(8, 8, 9, 8), 0)
}

func TestAttentionForward(t *testing.T) {
	const b, lq, lk, d, heads = 2, 3, 4, 6, 3
	q, k, v := randn(1, b, lq, d), randn(2, b, lk, d), randn(3, b, lk, d)
	mask := FromData([]float32{1, 1, 0, 1, 0, 0, 0, 0}, b, 1, 1, lk) // batch 1 masks every key
	tp := NewTape(DefaultOptions())
	got := tp.Attention(tp.Const(q), tp.Const(k), tp.Const(v), heads, mask).Value
	dh := d / heads
	want := make([]float64, 0, b*lq*d)
	for bi := 0; bi < b; bi++ {
		for i := 0; i < lq; i++ {
			for h := 0; h < heads; h++ {
				w := make([]float64, lk)
				var s float64
				mx := math.Inf(-1)
				for j := 0; j < lk; j++ {
					for e := 0; e < dh; e++ {
						w[j] += float64(q.At(bi, i, h*dh+e)) * float64(k.At(bi, j, h*dh+e))
					}
					w[j] /= math.Sqrt(float64(dh))
					if mask.At(bi, 0, 0, j) != 0 {
						mx = math.Max(mx, w[j])
					}
				}
				for j := range w {
					if mask.At(bi, 0, 0, j) == 0 {
						w[j] = 0
						continue
					}
					w[j] = math.Exp(w[j] - mx)
					s += w[j]
				}
				for e := 0; e < dh; e++ {
					var o float64
					for j := range w {
						if s > 0 {
							o += w[j] / s * float64(v.At(bi, j, h*dh+e))
						}
					}
					want = append(want, o)
				}
			}
		}
	}
	assertClose(t, "Attention", got.Data, want, 1e-5)
}

func TestLossForward(t *testing.T) {
	tp := NewTape(DefaultOptions())
	logits := FromData([]float32{-200, 0, 3, 200}, 4)
	targets := FromData([]float32{0, 1, 0.5, 0}, 4)
	bce := func(x, y float64) float64 { return math.Max(x, 0) - x*y + math.Log1p(math.Exp(-math.Abs(x))) }
	want := (bce(-200, 0) + bce(0, 1) + bce(3, 0.5) + bce(200, 0)) / 4
	assertClose(t, "BCEWithLogits", tp.BCEWithLogits(tp.Const(logits), targets).Value.Data, f64(want), 1e-6)

	assertClose(t, "MSE", tp.MSE(tp.Const(FromData([]float32{1, 2, 3}, 3)), FromData([]float32{1, 0, 4}, 3)).Value.Data, f64(5.0/3), 1e-6)

	ce := tp.SoftmaxCrossEntropy(tp.Const(FromData([]float32{1, 2, 3, 0, 0, 1000}, 2, 3)), []int{0, 2}).Value.Data
	lse := math.Log(math.Exp(1) + math.Exp(2) + math.Exp(3))
	assertClose(t, "SoftmaxCrossEntropy", ce, f64((lse-1)/2), 1e-6)
}

// TestReLUBits checks ReLU and its gradient bit for bit against the scalar definition on
// special values and random bit patterns (the vector path must agree with it exactly).
func TestReLUBits(t *testing.T) {
	specials := []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), -float32(math.NaN()), math.Float32frombits(1), math.Float32frombits(0x80000001)}
	rng := NewRand(11)
	x := New(1003)
	for i := range x.Data {
		if i < len(specials) {
			x.Data[i] = specials[i]
		} else {
			x.Data[i] = math.Float32frombits(rng.Uint32())
		}
	}
	g := randn(12, 1003)
	ga0 := randn(13, 1003)
	tp := NewTape(Options{Workers: 1})
	xv := tp.Variable(x)
	xv.Grad = ga0.Clone()
	y := tp.ReLU(xv)
	tp.BackwardFrom(y, g)
	for i, v := range x.Data {
		b := math.Float32bits(v)
		want := b
		if b>>31 == 1 {
			want = 0
		}
		if got := math.Float32bits(y.Value.Data[i]); got != want {
			t.Fatalf("ReLU(%08x) = %08x, want %08x", b, got, want)
		}
		wg := ga0.Data[i]
		if want != 0 {
			wg += g.Data[i]
		} else {
			wg += 0
		}
		if math.Float32bits(xv.Grad.Data[i]) != math.Float32bits(wg) {
			t.Fatalf("gradient at %08x = %v, want %v", b, xv.Grad.Data[i], wg)
		}
	}
}

// TestMaxPoolOddSizes compares the 2×2 fast path with a direct computation on planes whose
// sides are odd (the last row and column are dropped) and on tied values.
func TestMaxPoolOddSizes(t *testing.T) {
	x := randn(3, 2, 3, 5, 7)
	for i := 0; i < 20; i++ {
		x.Data[i] = 0.5 // ties: the first maximal element wins
	}
	tp := NewTape(DefaultOptions())
	xv := tp.Variable(x)
	y := tp.MaxPool2D(xv, 2, 2)
	if !sameShape(y.Value.Shape, []int{2, 3, 2, 3}) {
		t.Fatalf("shape %v", y.Value.Shape)
	}
	g := randn(4, y.Value.Shape...)
	tp.BackwardFrom(y, g)
	wantGrad := New(x.Shape...)
	for n := 0; n < 2; n++ {
		for c := 0; c < 3; c++ {
			for oy := 0; oy < 2; oy++ {
				for ox := 0; ox < 3; ox++ {
					by, bx := 2*oy, 2*ox
					for _, d := range [][2]int{{0, 1}, {1, 0}, {1, 1}} {
						if x.At(n, c, 2*oy+d[0], 2*ox+d[1]) > x.At(n, c, by, bx) {
							by, bx = 2*oy+d[0], 2*ox+d[1]
						}
					}
					if got, want := y.Value.At(n, c, oy, ox), x.At(n, c, by, bx); got != want {
						t.Fatalf("max at %d,%d,%d,%d = %v, want %v", n, c, oy, ox, got, want)
					}
					wantGrad.Set(wantGrad.At(n, c, by, bx)+g.At(n, c, oy, ox), n, c, by, bx)
				}
			}
		}
	}
	assertClose(t, "gradient", xv.Grad.Data, toF64(wantGrad.Data), 0)
}

// TestReLUFreshGradient covers ReLU's backward into a gradient buffer nobody wrote yet.
func TestReLUFreshGradient(t *testing.T) {
	x, g := randn(21, 1001), randn(22, 1001)
	x.Data[3] = float32(math.Copysign(0, -1))
	g.Data[5] = float32(math.Copysign(0, -1))
	tp := NewTape(Options{Workers: 2})
	xv := tp.Variable(x)
	tp.BackwardFrom(tp.ReLU(xv), g)
	for i, v := range x.Data {
		want := uint32(0)
		if v > 0 {
			want = math.Float32bits(g.Data[i])
		}
		if got := math.Float32bits(xv.Grad.Data[i]); got != want {
			t.Fatalf("gradient %d = %08x, want %08x", i, got, want)
		}
	}
}

func TestSum32Order(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 100, 1003} {
		x := randn(uint64(n), max(n, 1)).Data[:n]
		var s [8]float32
		for i, v := range x {
			s[i%8] += v
		}
		want := ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
		if got := sum32(x); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("n=%d: sum32 = %v, want %v", n, got, want)
		}
	}
}
