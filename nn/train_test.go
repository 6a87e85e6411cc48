package nn

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// mlp is a small multi-layer perceptron used by the training tests and benchmarks.
type mlp struct {
	layers []*Linear
	act    func(*Tape, *Node) *Node
	drop   float32
}

func newMLP(rng *rand.Rand, act func(*Tape, *Node) *Node, sizes ...int) *mlp {
	m := &mlp{act: act}
	for i := 0; i+1 < len(sizes); i++ {
		m.layers = append(m.layers, NewLinear("l"+string(rune('0'+i)), sizes[i], sizes[i+1], true, rng))
	}
	return m
}

func (m *mlp) forward(tp *Tape, x *Node) *Node {
	for i, l := range m.layers {
		x = l.Forward(tp, x)
		if i+1 < len(m.layers) {
			x = tp.Dropout(m.act(tp, x), m.drop)
		}
	}
	return x
}

func (m *mlp) params() []*Param {
	var ps []*Param
	for _, l := range m.layers {
		ps = append(ps, l.Params()...)
	}
	return ps
}

func TestMLPLearnsXOR(t *testing.T) {
	x := FromData([]float32{0, 0, 0, 1, 1, 0, 1, 1}, 4, 2)
	y := FromData([]float32{0, 1, 1, 0}, 4, 1)
	m := newMLP(NewRand(1), (*Tape).Tanh, 2, 8, 1)
	opt := DefaultAdamOptions()
	opt.LR = 0.05
	o := NewAdam(m.params(), opt)
	tp := NewTape(DefaultOptions())
	var loss float32
	for step := 0; step < 300; step++ {
		tp.Reset()
		l := tp.BCEWithLogits(m.forward(tp, tp.Const(x)), y)
		tp.Backward(l)
		o.Step()
		loss = l.Item()
	}
	if loss > 0.05 {
		t.Fatalf("XOR loss after 300 steps: %v", loss)
	}
	tp.Reset()
	out := m.forward(tp, tp.Const(x)).Value.Data
	for i, v := range out {
		if (v > 0) != (y.Data[i] == 1) {
			t.Fatalf("XOR(%v) logit %v", x.Data[2*i:2*i+2], v)
		}
	}
}

func TestMLPRegression(t *testing.T) {
	// y = sin(2·x0) + x1², 256 points in [−1,1]².
	rng := NewRand(2)
	const n = 256
	x, y := New(n, 2), New(n, 1)
	for i := 0; i < n; i++ {
		a, b := 2*rng.Float64()-1, 2*rng.Float64()-1
		x.Data[2*i], x.Data[2*i+1] = float32(a), float32(b)
		y.Data[i] = float32(math.Sin(2*a) + b*b)
	}
	m := newMLP(NewRand(3), (*Tape).Tanh, 2, 32, 32, 1)
	opt := DefaultAdamOptions()
	opt.LR = 0.01
	o := NewAdam(m.params(), opt)
	tp := NewTape(DefaultOptions())
	var loss float32
	for step := 0; step < 600; step++ {
		tp.Reset()
		l := tp.MSE(m.forward(tp, tp.Const(x)), y)
		tp.Backward(l)
		o.Step()
		loss = l.Item()
	}
	if loss > 0.005 {
		t.Fatalf("regression MSE after 600 steps: %v (variance of y is about 0.5)", loss)
	}
}

// stripes makes n 1×8×8 images: class 0 has horizontal stripes, class 1 vertical ones,
// with random phase and Gaussian noise.
func stripes(rng *rand.Rand, n int) (*Tensor, []int) {
	x := New(n, 1, 8, 8)
	labels := make([]int, n)
	for i := 0; i < n; i++ {
		c := rng.IntN(2)
		labels[i] = c
		phase := rng.IntN(2)
		for r := 0; r < 8; r++ {
			for s := 0; s < 8; s++ {
				k := r
				if c == 1 {
					k = s
				}
				v := float32((k + phase) % 2)
				x.Set(v+float32(0.3*rng.NormFloat64()), i, 0, r, s)
			}
		}
	}
	return x, labels
}

type tinyCNN struct {
	conv *Conv2DLayer
	fc   *Linear
}

func (m *tinyCNN) forward(tp *Tape, x *Node) *Node {
	h := tp.MaxPool2D(tp.ReLU(m.conv.Forward(tp, x)), 2, 2) // [N,4,4,4]
	return m.fc.Forward(tp, tp.Flatten(h))
}

func (m *tinyCNN) params() []*Param { return append(m.conv.Params(), m.fc.Params()...) }

func TestCNNSeparatesStripes(t *testing.T) {
	rng := NewRand(4)
	m := &tinyCNN{conv: NewConv2D("conv", 1, 4, 3, 1, 1, rng), fc: NewLinear("fc", 64, 2, true, rng)}
	opt := DefaultAdamOptions()
	opt.LR = 0.01
	o := NewAdam(m.params(), opt)
	tp := NewTape(DefaultOptions())
	data := NewRand(5)
	for step := 0; step < 80; step++ {
		x, labels := stripes(data, 16)
		tp.Reset()
		tp.Backward(tp.SoftmaxCrossEntropy(m.forward(tp, tp.Const(x)), labels))
		o.Step()
	}
	x, labels := stripes(NewRand(6), 200)
	tp.Reset()
	logits := m.forward(tp, tp.Const(x)).Value
	correct := 0
	for i, l := range labels {
		if (logits.At(i, 1) > logits.At(i, 0)) == (l == 1) {
			correct++
		}
	}
	if correct < 190 {
		t.Fatalf("test accuracy %d/200", correct)
	}
}

// trainSteps trains an MLP with dropout and a small CNN for steps Adam steps from seed
// on a Tape with the given worker count, and returns all parameters.
func trainSteps(seed uint64, workers, steps int) []*Param {
	rng := NewRand(seed)
	m := newMLP(rng, (*Tape).ReLU, 64, 96, 64, 1)
	m.drop = 0.2
	c := &tinyCNN{conv: NewConv2D("conv", 1, 4, 3, 1, 1, rng), fc: NewLinear("fc", 64, 2, true, rng)}
	ps := append(m.params(), c.params()...)
	o := NewAdam(ps, DefaultAdamOptions())
	o.Workers = workers
	tp := NewTape(Options{Workers: workers, Seed: seed})
	data := NewRand(seed + 1)
	x, y := New(128, 64), New(128, 1)
	for step := 0; step < steps; step++ {
		Normal(x, 1, data)
		for i := range y.Data {
			y.Data[i] = float32(data.IntN(2))
		}
		imgs, labels := stripes(data, 32)
		tp.Reset()
		l1 := tp.BCEWithLogits(m.forward(tp, tp.Const(x)), y)
		l2 := tp.SoftmaxCrossEntropy(c.forward(tp, tp.Const(imgs)), labels)
		tp.Backward(tp.Add(l1, l2))
		o.Step()
	}
	return ps
}

func TestDeterminism(t *testing.T) {
	ref := trainSteps(7, 1, 10)
	for _, w := range []int{1, 2, 3} {
		got := trainSteps(7, w, 10)
		for i, p := range got {
			for j, v := range p.Value.Data {
				if math.Float32bits(v) != math.Float32bits(ref[i].Value.Data[j]) {
					t.Fatalf("workers %d: %s[%d] = %v, want %v (bit-identical)", w, p.Name, j, v, ref[i].Value.Data[j])
				}
			}
		}
	}
	other := trainSteps(8, 2, 10)
	if other[0].Value.Data[0] == ref[0].Value.Data[0] {
		t.Fatal("a different seed gave the same parameters")
	}
}

// TestTapeReuseAllocations checks that a training step on a reused Tape allocates little:
// the arenas hand back the previous step's buffers (about 60 KB of tensors here), so what
// remains is a few small closures of the ops that may run in parallel.
func TestTapeReuseAllocations(t *testing.T) {
	m := newMLP(NewRand(1), (*Tape).ReLU, 32, 64, 1)
	o := NewAdam(m.params(), DefaultAdamOptions())
	tp := NewTape(Options{Workers: 1, Seed: 1})
	x, y := randn(2, 64, 32), New(64, 1)
	step := func() {
		tp.Reset()
		tp.Backward(tp.BCEWithLogits(m.forward(tp, tp.Const(x)), y))
		o.Step()
	}
	step()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const steps = 50
	for i := 0; i < steps; i++ {
		step()
	}
	runtime.ReadMemStats(&after)
	allocs := float64(after.Mallocs-before.Mallocs) / steps
	bytes := float64(after.TotalAlloc-before.TotalAlloc) / steps
	t.Logf("%.1f allocations, %.0f bytes per step", allocs, bytes)
	if allocs > 8 || bytes > 1024 {
		t.Fatalf("%.1f allocations, %.0f bytes per step on a reused tape", allocs, bytes)
	}
}
