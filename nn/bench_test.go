package nn

import (
	"testing"
	"time"
)

// stepBench runs step under b.Loop after one warm-up step (which fills the Tape's arenas)
// and reports steps/s and the process CPU time per step (cpu-ms/step: all goroutines,
// GC included), the latter a figure that other load on the machine disturbs less.
func stepBench(b *testing.B, step func()) {
	step()
	b.ReportAllocs()
	var cpu0 time.Duration
	started := false
	for b.Loop() {
		if !started {
			cpu0, _ = processCPU()
			started = true
		}
		step()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
	if cpu1, ok := processCPU(); ok {
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/step")
	}
}

// Training-step benchmarks, reported as steps/s. Reference points (the design notes, same
// kind of machine): gorgonia v0.9.18 ran the MLP at 23.9 steps/s and the CNN at 7.6.
//
//	go test ./nn -run '^$' -bench . -count 5
//
// Medians measured with that command on a shared 2-vCPU Xeon (AVX-512; load average about
// 2 from other work): MLP 183 steps/s (5.5 CPU-ms/step), CNN 22.8 steps/s (43.7
// CPU-ms/step). With -tags purego (gonum's Sgemm instead of the assembly kernels): MLP
// about 15 steps/s, CNN about 3.6. Other load on the machine moves steps/s a lot; the
// cpu-ms/step metric much less.

// BenchmarkMLPStep is one Adam step of an MLP 256-512-256-1 (ReLU) with a BCE loss on a
// batch of 256.
func BenchmarkMLPStep(b *testing.B) {
	rng := NewRand(1)
	m := newMLP(rng, (*Tape).ReLU, 256, 512, 256, 1)
	o := NewAdam(m.params(), DefaultAdamOptions())
	x, y := New(256, 256), New(256, 1)
	Normal(x, 1, rng)
	for i := range y.Data {
		y.Data[i] = float32(rng.IntN(2))
	}
	tp := NewTape(DefaultOptions())
	stepBench(b, func() {
		tp.Reset()
		tp.Backward(tp.BCEWithLogits(m.forward(tp, tp.Const(x)), y))
		o.Step()
	})
}

// benchCNN is conv 3×3 (3→16, pad 1) → ReLU → conv 3×3 (16→32, pad 1) → ReLU →
// maxpool 2 → dense (32·16·16 → 10), for 32×32×3 images.
type benchCNN struct {
	c1, c2 *Conv2DLayer
	fc     *Linear
}

func newBenchCNN(seed uint64) *benchCNN {
	rng := NewRand(seed)
	return &benchCNN{
		c1: NewConv2D("c1", 3, 16, 3, 1, 1, rng),
		c2: NewConv2D("c2", 16, 32, 3, 1, 1, rng),
		fc: NewLinear("fc", 32*16*16, 10, true, rng),
	}
}

func (m *benchCNN) forward(tp *Tape, x *Node) *Node {
	h := tp.ReLU(m.c1.Forward(tp, x))
	h = tp.ReLU(m.c2.Forward(tp, h))
	h = tp.MaxPool2D(h, 2, 2)
	return m.fc.Forward(tp, tp.Flatten(h))
}

func (m *benchCNN) params() []*Param {
	return append(append(m.c1.Params(), m.c2.Params()...), m.fc.Params()...)
}

// BenchmarkCNNStep is one Adam step of benchCNN with softmax cross-entropy on a batch of
// 64 images.
func BenchmarkCNNStep(b *testing.B) {
	m := newBenchCNN(1)
	o := NewAdam(m.params(), DefaultAdamOptions())
	rng := NewRand(2)
	x := New(64, 3, 32, 32)
	Normal(x, 1, rng)
	labels := make([]int, 64)
	for i := range labels {
		labels[i] = rng.IntN(10)
	}
	tp := NewTape(DefaultOptions())
	stepBench(b, func() {
		tp.Reset()
		tp.Backward(tp.SoftmaxCrossEntropy(m.forward(tp, tp.Const(x)), labels))
		o.Step()
	})
}
