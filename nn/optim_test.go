package nn

import (
	"math"
	"testing"
)

// setGrad gives p a dense gradient, as Backward would.
func setGrad(p *Param, g ...float32) {
	copy(p.Grad.Data, g)
	p.dense = true
}

func TestSGD(t *testing.T) {
	cases := []struct {
		name         string
		lr, mu, wd   float32
		grads        [][]float32
		want         []float64
		wantVelocity []float64
	}{
		// p = [1, 2], g = [0.5, −1]: p − 0.1·g.
		{"plain", 0.1, 0, 0, [][]float32{{0.5, -1}}, f64(0.95, 2.1), nil},
		// Two steps with momentum 0.9: v1 = g, v2 = 0.9·g + g = 1.9·g; p − 0.1·(g + 1.9·g).
		{"momentum", 0.1, 0.9, 0, [][]float32{{0.5, -1}, {0.5, -1}}, f64(1-0.1*2.9*0.5, 2+0.1*2.9), f64(0.95, -1.9)},
		// Weight decay 0.5 adds 0.5·p to the gradient: g' = [1, 0].
		{"decay", 0.1, 0, 0.5, [][]float32{{0.5, -1}}, f64(0.9, 2), nil},
	}
	for _, c := range cases {
		p := NewParamFrom("p", FromData([]float32{1, 2}, 2))
		o := NewSGD([]*Param{p}, c.lr, c.mu)
		o.WeightDecay = c.wd
		for _, g := range c.grads {
			setGrad(p, g...)
			o.Step()
		}
		assertClose(t, c.name, p.Value.Data, c.want, 1e-6)
		if c.wantVelocity != nil {
			assertClose(t, c.name+" velocity", o.vel[0], c.wantVelocity, 1e-6)
		}
		if p.HasGrad() || p.Grad.Data[0] != 0 {
			t.Fatalf("%s: gradient not cleared", c.name)
		}
	}
}

func TestAdagrad(t *testing.T) {
	p := NewParamFrom("p", FromData([]float32{1, 2}, 2))
	o := NewAdagrad([]*Param{p}, 0.1)
	setGrad(p, 0.5, -1)
	o.Step() // h = [0.25, 1]; p − 0.1·g/√h = p − 0.1·sign(g)
	assertClose(t, "step 1", p.Value.Data, f64(0.9, 2.1), 1e-6)
	setGrad(p, 1, 1)
	o.Step() // h = [1.25, 2]
	assertClose(t, "step 2", p.Value.Data, f64(0.9-0.1/math.Sqrt(1.25), 2.1-0.1/math.Sqrt(2)), 1e-6)
}

func TestAdam(t *testing.T) {
	p := NewParamFrom("p", FromData([]float32{1, -2}, 2))
	opt := AdamOptions{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	o := NewAdam([]*Param{p}, opt)
	// Step 1: m̂ = g, v̂ = g², so the Adam step is LR·sign(g) after the decay p·(1 − LR·wd).
	setGrad(p, 0.5, -3)
	o.Step()
	assertClose(t, "step 1", p.Value.Data, f64(1*(1-0.001)-0.01, -2*(1-0.001)+0.01), 1e-6)
	// Step 2, by the formulas with g2 = [0.1, 1].
	p1 := []float64{float64(p.Value.Data[0]), float64(p.Value.Data[1])}
	g1, g2 := []float64{0.5, -3}, []float64{0.1, 1}
	want := make([]float64, 2)
	for i := range want {
		m := 0.9*0.1*g1[i] + 0.1*g2[i]
		v := 0.999*0.001*g1[i]*g1[i] + 0.001*g2[i]*g2[i]
		mh, vh := m/(1-0.81), v/(1-0.999*0.999)
		want[i] = p1[i]*(1-0.001) - 0.01*mh/(math.Sqrt(vh)+1e-8)
	}
	setGrad(p, 0.1, 1)
	o.Step()
	assertClose(t, "step 2", p.Value.Data, want, 1e-6)
	if o.Steps() != 2 {
		t.Fatalf("Steps = %d", o.Steps())
	}
}

func TestOptimizerSkipsParamsWithoutGradient(t *testing.T) {
	p := NewParamFrom("p", FromData([]float32{1, 2}, 2))
	for _, o := range []Optimizer{NewSGD([]*Param{p}, 0.1, 0.9), NewAdagrad([]*Param{p}, 0.1), NewAdam([]*Param{p}, AdamOptions{LR: 0.1, Beta1: 0.9, Beta2: 0.999, WeightDecay: 0.5})} {
		o.Step()
	}
	assertClose(t, "untouched", p.Value.Data, f64(1, 2), 0)
}

// TestSparseGather checks that an embedding lookup yields a sparse gradient and that each
// optimizer changes only the gathered rows.
func TestSparseGather(t *testing.T) {
	for _, name := range []string{"sgd", "adagrad", "adam"} {
		t.Run(name, func(t *testing.T) {
			e := NewParamFrom("E", randn(1, 6, 3))
			before := e.Value.Clone()
			var o Optimizer
			switch name {
			case "sgd":
				o = NewSGD([]*Param{e}, 0.1, 0.9)
			case "adagrad":
				o = NewAdagrad([]*Param{e}, 0.1)
			default:
				opt := DefaultAdamOptions()
				opt.WeightDecay = 0.1
				o = NewAdam([]*Param{e}, opt)
			}
			tp := NewTape(DefaultOptions())
			r := randn(2, 3, 3)
			out := tp.Gather(tp.Param(e), []int{4, 1, 4})
			tp.BackwardFrom(out, r)
			rows, sparse := e.SparseRows()
			if !sparse || len(rows) != 2 || rows[0] != 4 || rows[1] != 1 {
				t.Fatalf("sparse rows %v (sparse %v), want [4 1]", rows, sparse)
			}
			want := New(6, 3)
			for j := 0; j < 3; j++ {
				want.Data[4*3+j] = r.Data[j] + r.Data[6+j]
				want.Data[1*3+j] = r.Data[3+j]
			}
			assertClose(t, "gradient", e.Grad.Data, toF64(want.Data), 0)
			o.Step()
			for row := 0; row < 6; row++ {
				changed := false
				for j := 0; j < 3; j++ {
					changed = changed || e.Value.Data[row*3+j] != before.Data[row*3+j]
				}
				if changed != (row == 1 || row == 4) {
					t.Fatalf("row %d changed = %v", row, changed)
				}
			}
			if e.HasGrad() || !e.Grad.AllFinite() || sumAbs(e.Grad.Data) != 0 {
				t.Fatal("gradient not cleared")
			}
			// A dense use makes the whole gradient dense.
			tp.Reset()
			n := tp.Param(e)
			tp.Backward(tp.Sum(tp.Add(tp.Gather(n, []int{0}), tp.SumAxis(n, 0))))
			if _, sparse := e.SparseRows(); sparse {
				t.Fatal("gradient still sparse after a dense op")
			}
		})
	}
}

func toF64(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[i] = float64(v)
	}
	return out
}

func sumAbs(xs []float32) float64 {
	var s float64
	for _, v := range xs {
		s += math.Abs(float64(v))
	}
	return s
}

func TestClipGradNorm(t *testing.T) {
	a, b := NewParam("a", 2), NewParam("b", 1)
	setGrad(a, 3, 0)
	setGrad(b, 4)
	if n := ClipGradNorm([]*Param{a, b}, 1); math.Abs(n-5) > 1e-9 {
		t.Fatalf("norm %v, want 5", n)
	}
	assertClose(t, "clipped", append(append([]float32{}, a.Grad.Data...), b.Grad.Data...), f64(0.6, 0, 0.8), 1e-6)
}

func TestInitialisers(t *testing.T) {
	rng := NewRand(1)
	x := New(200, 300)
	XavierUniform(x, 200, 300, rng)
	a := math.Sqrt(6.0 / 500)
	var ss float64
	for _, v := range x.Data {
		if math.Abs(float64(v)) > a {
			t.Fatalf("Xavier value %v outside ±%v", v, a)
		}
		ss += float64(v) * float64(v)
	}
	if v := ss / float64(x.Len()); math.Abs(v-a*a/3) > 0.05*a*a/3 {
		t.Fatalf("Xavier variance %v, want %v", v, a*a/3)
	}
	HeNormal(x, 50, rng)
	ss = 0
	for _, v := range x.Data {
		ss += float64(v) * float64(v)
	}
	if v := ss / float64(x.Len()); math.Abs(v-2.0/50) > 0.05*2/50 {
		t.Fatalf("He variance %v, want %v", v, 2.0/50)
	}
	y := New(10)
	Normal(y, 1, NewRand(9))
	z := New(10)
	Normal(z, 1, NewRand(9))
	assertClose(t, "seeded", y.Data, toF64(z.Data), 0)
	if fi, fo := Fans([]int{16, 3, 3, 3}); fi != 27 || fo != 144 {
		t.Fatalf("Fans of a filter bank = %d, %d", fi, fo)
	}
}
