package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// gradcheck compares the gradients Backward computes for f's inputs with central finite
// differences. The scalar checked is L = Σ_k R_k·out_k with fixed random weights R (so
// every output element matters, each differently), formed in float64 from f's float32
// outputs. Each input element is perturbed by ±eps (1e-2) on a reused Tape reseeded
// before every evaluation (so Dropout draws the same mask), and the two gradients must
// agree within 1e-3 + 1e-2·max(|analytic|, |numeric|).
func gradcheck(t *testing.T, f func(tp *Tape, in ...*Node) *Node, inputs ...*Tensor) {
	t.Helper()
	gradcheckTol(t, 1e-2, 1e-2, 1e-3, f, inputs...)
}

func gradcheckTol(t *testing.T, eps, rtol, atol float64, f func(tp *Tape, in ...*Node) *Node, inputs ...*Tensor) {
	t.Helper()
	for _, msg := range gradDiff(eps, rtol, atol, f, inputs...) {
		t.Error(msg)
	}
}

// gradDiff returns a description of each disagreement (at most 5, then a count).
func gradDiff(eps, rtol, atol float64, f func(tp *Tape, in ...*Node) *Node, inputs ...*Tensor) []string {
	var msgs []string
	const seed = 12345
	tp := NewTape(Options{Workers: 2, Seed: seed})
	eval := func(record bool) ([]*Node, *Node) {
		tp.Reset()
		tp.Reseed(seed)
		nodes := make([]*Node, len(inputs))
		for i, x := range inputs {
			if record {
				nodes[i] = tp.Variable(x)
			} else {
				nodes[i] = tp.Const(x)
			}
		}
		return nodes, f(tp, nodes...)
	}
	nodes, out := eval(true)
	rng := rand.New(rand.NewPCG(3, 4))
	r := New(out.Value.Shape...)
	for i := range r.Data {
		r.Data[i] = float32(rng.NormFloat64())
	}
	if !out.RequiresGrad() {
		return []string{"output does not depend on the inputs"}
	}
	tp.BackwardFrom(out, r)
	analytic := make([][]float32, len(inputs))
	for i, n := range nodes {
		analytic[i] = make([]float32, inputs[i].Len())
		if n.Grad != nil {
			copy(analytic[i], n.Grad.Data)
		}
	}
	loss := func() float64 {
		_, o := eval(false)
		var s float64
		for k, v := range o.Value.Data {
			s += float64(v) * float64(r.Data[k])
		}
		return s
	}
	bad := 0
	for i, x := range inputs {
		for j := range x.Data {
			orig := x.Data[j]
			x.Data[j] = orig + float32(eps)
			lp := loss()
			x.Data[j] = orig - float32(eps)
			lm := loss()
			x.Data[j] = orig
			// Use the actual float32 step, not eps, in the quotient.
			h := float64(orig+float32(eps)) - float64(orig-float32(eps))
			num := (lp - lm) / h
			an := float64(analytic[i][j])
			if math.Abs(an-num) > atol+rtol*math.Max(math.Abs(an), math.Abs(num)) || math.IsNaN(an) {
				if bad < 5 {
					msgs = append(msgs, fmt.Sprintf("input %d element %d: analytic %.6g, numeric %.6g", i, j, an, num))
				}
				bad++
			}
		}
	}
	if bad > 0 {
		msgs = append(msgs, fmt.Sprintf("%d gradient elements differ", bad))
	}
	return msgs
}

// Input generators for the table below.

func randn(seed uint64, shape ...int) *Tensor {
	rng := rand.New(rand.NewPCG(seed, 99))
	x := New(shape...)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	return x
}

// awayFromZero returns values with |x| ≥ 0.1, so kinks at 0 are not crossed by ±eps.
func awayFromZero(seed uint64, shape ...int) *Tensor {
	x := randn(seed, shape...)
	for i, v := range x.Data {
		x.Data[i] = float32(math.Copysign(0.1+math.Abs(float64(v)), float64(v)))
	}
	return x
}

// positive returns values in [0.5, 2).
func positive(seed uint64, shape ...int) *Tensor {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := New(shape...)
	for i := range x.Data {
		x.Data[i] = float32(0.5 + 1.5*rng.Float64())
	}
	return x
}

// distinct returns a shuffled ladder of values 0.05 apart (no ties within ±eps).
func distinct(seed uint64, shape ...int) *Tensor {
	rng := rand.New(rand.NewPCG(seed, 5))
	x := New(shape...)
	for i, p := range rng.Perm(len(x.Data)) {
		x.Data[i] = float32(p)*0.05 - 1
	}
	return x
}

func TestGradients(t *testing.T) {
	mask := FromData([]float32{1, 0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1}, 3, 4)
	keyMask := FromData([]float32{1, 1, 1, 0, 1, 1, 0, 0}, 2, 1, 1, 4)
	bceTargets := FromData([]float32{0, 1, 1, 0, 0.3, 1}, 2, 3)
	bceWeights := FromData([]float32{1, 2, 0.5, 1, 0, 3}, 2, 3)
	mseTarget := randn(77, 2, 3)
	labels := []int{2, 0, 1, 2}
	type in = *Tensor
	cases := []struct {
		name   string
		f      func(tp *Tape, x ...*Node) *Node
		inputs []in
	}{
		{"MatMul", func(tp *Tape, x ...*Node) *Node { return tp.MatMul(x[0], x[1]) }, []in{randn(1, 3, 4), randn(2, 4, 5)}},
		{"MatMul3D", func(tp *Tape, x ...*Node) *Node { return tp.MatMul(x[0], x[1]) }, []in{randn(1, 2, 3, 4), randn(2, 4, 5)}},
		{"MatMulT", func(tp *Tape, x ...*Node) *Node { return tp.MatMulT(x[0], x[1]) }, []in{randn(1, 3, 4), randn(2, 5, 4)}},
		{"GemmTN", func(tp *Tape, x ...*Node) *Node { return tp.Gemm(x[0], x[1], true, false) }, []in{randn(1, 4, 3), randn(2, 4, 5)}},
		{"GemmTT", func(tp *Tape, x ...*Node) *Node { return tp.Gemm(x[0], x[1], true, true) }, []in{randn(1, 4, 3), randn(2, 5, 4)}},
		{"GemmBig", func(tp *Tape, x ...*Node) *Node { return tp.MatMul(x[0], x[1]) }, []in{randn(1, 13, 20), randn(2, 20, 18)}},
		{"BatchedMatMul", func(tp *Tape, x ...*Node) *Node { return tp.BatchedMatMul(x[0], x[1], false, false) }, []in{randn(1, 2, 3, 4), randn(2, 2, 4, 5)}},
		{"BatchedMatMulNT", func(tp *Tape, x ...*Node) *Node { return tp.BatchedMatMul(x[0], x[1], false, true) }, []in{randn(1, 2, 2, 3, 4), randn(2, 2, 2, 5, 4)}},
		{"BatchedMatMulTN", func(tp *Tape, x ...*Node) *Node { return tp.BatchedMatMul(x[0], x[1], true, false) }, []in{randn(1, 3, 4, 3), randn(2, 3, 4, 5)}},
		{"BatchedMatMulTT", func(tp *Tape, x ...*Node) *Node { return tp.BatchedMatMul(x[0], x[1], true, true) }, []in{randn(1, 3, 4, 3), randn(2, 3, 5, 4)}},
		{"Add", func(tp *Tape, x ...*Node) *Node { return tp.Add(x[0], x[1]) }, []in{randn(1, 3, 4), randn(2, 3, 4)}},
		{"AddBias", func(tp *Tape, x ...*Node) *Node { return tp.Add(x[0], x[1]) }, []in{randn(1, 3, 4), randn(2, 4)}},
		{"AddBiasLeft", func(tp *Tape, x ...*Node) *Node { return tp.Add(x[0], x[1]) }, []in{randn(1, 4), randn(2, 3, 4)}},
		{"AddColumn", func(tp *Tape, x ...*Node) *Node { return tp.Add(x[0], x[1]) }, []in{randn(1, 2, 3, 4), randn(2, 3, 1)}},
		{"AddOuter", func(tp *Tape, x ...*Node) *Node { return tp.Add(x[0], x[1]) }, []in{randn(1, 3, 1), randn(2, 1, 4)}},
		{"SubScalar", func(tp *Tape, x ...*Node) *Node { return tp.Sub(x[0], x[1]) }, []in{randn(1, 3, 4), randn(2, 1)}},
		{"SubBias", func(tp *Tape, x ...*Node) *Node { return tp.Sub(x[1], x[0]) }, []in{randn(1, 3, 4), randn(2, 4)}},
		{"Mul", func(tp *Tape, x ...*Node) *Node { return tp.Mul(x[0], x[1]) }, []in{randn(1, 3, 4), randn(2, 3, 4)}},
		{"MulBias", func(tp *Tape, x ...*Node) *Node { return tp.Mul(x[0], x[1]) }, []in{randn(1, 2, 3, 4), randn(2, 4)}},
		{"MulSelf", func(tp *Tape, x ...*Node) *Node { return tp.Mul(x[0], x[0]) }, []in{randn(1, 3, 4)}},
		{"Div", func(tp *Tape, x ...*Node) *Node { return tp.Div(x[0], x[1]) }, []in{randn(1, 3, 4), positive(2, 3, 4)}},
		{"DivColumn", func(tp *Tape, x ...*Node) *Node { return tp.Div(x[0], x[1]) }, []in{randn(1, 3, 4), positive(2, 3, 1)}},
		{"Scale", func(tp *Tape, x ...*Node) *Node { return tp.Scale(x[0], -1.5) }, []in{randn(1, 3, 4)}},
		{"AddScalar", func(tp *Tape, x ...*Node) *Node { return tp.AddScalar(x[0], 2) }, []in{randn(1, 3, 4)}},
		{"Sigmoid", func(tp *Tape, x ...*Node) *Node { return tp.Sigmoid(x[0]) }, []in{randn(1, 3, 4)}},
		{"ReLU", func(tp *Tape, x ...*Node) *Node { return tp.ReLU(x[0]) }, []in{awayFromZero(1, 3, 4)}},
		{"Tanh", func(tp *Tape, x ...*Node) *Node { return tp.Tanh(x[0]) }, []in{randn(1, 3, 4)}},
		{"Softplus", func(tp *Tape, x ...*Node) *Node { return tp.Softplus(x[0]) }, []in{randn(1, 3, 4)}},
		{"LogSigmoid", func(tp *Tape, x ...*Node) *Node { return tp.LogSigmoid(x[0]) }, []in{randn(1, 3, 4)}},
		{"Exp", func(tp *Tape, x ...*Node) *Node { return tp.Exp(x[0]) }, []in{randn(1, 3, 4)}},
		{"Log", func(tp *Tape, x ...*Node) *Node { return tp.Log(x[0]) }, []in{positive(1, 3, 4)}},
		{"Neg", func(tp *Tape, x ...*Node) *Node { return tp.Neg(x[0]) }, []in{randn(1, 3, 4)}},
		{"Square", func(tp *Tape, x ...*Node) *Node { return tp.Square(x[0]) }, []in{randn(1, 3, 4)}},
		{"Sqrt", func(tp *Tape, x ...*Node) *Node { return tp.Sqrt(x[0]) }, []in{positive(1, 3, 4)}},
		{"Abs", func(tp *Tape, x ...*Node) *Node { return tp.Abs(x[0]) }, []in{awayFromZero(1, 3, 4)}},
		{"Softmax", func(tp *Tape, x ...*Node) *Node { return tp.Softmax(x[0]) }, []in{randn(1, 3, 4)}},
		{"MaskedSoftmax", func(tp *Tape, x ...*Node) *Node { return tp.MaskedSoftmax(x[0], mask) }, []in{randn(1, 3, 4)}},
		{"MaskedSoftmaxBroadcast", func(tp *Tape, x ...*Node) *Node { return tp.MaskedSoftmax(x[0], keyMask) }, []in{randn(1, 2, 2, 3, 4)}},
		{"LogSoftmax", func(tp *Tape, x ...*Node) *Node { return tp.LogSoftmax(x[0]) }, []in{randn(1, 3, 4)}},
		{"Gather", func(tp *Tape, x ...*Node) *Node { return tp.Gather(x[0], []int{2, 0, 2, 3}) }, []in{randn(1, 5, 3)}},
		{"Concat0", func(tp *Tape, x ...*Node) *Node { return tp.Concat(0, x[0], x[1]) }, []in{randn(1, 2, 3), randn(2, 4, 3)}},
		{"Concat1", func(tp *Tape, x ...*Node) *Node { return tp.Concat(1, x[0], x[1], x[0]) }, []in{randn(1, 2, 3), randn(2, 2, 2)}},
		{"ConcatLast", func(tp *Tape, x ...*Node) *Node { return tp.Concat(-1, x[0], x[1]) }, []in{randn(1, 2, 2, 3), randn(2, 2, 2, 1)}},
		{"Reshape", func(tp *Tape, x ...*Node) *Node { return tp.Reshape(x[0], 4, -1) }, []in{randn(1, 2, 3, 2)}},
		{"Transpose", func(tp *Tape, x ...*Node) *Node { return tp.Transpose(x[0]) }, []in{randn(1, 3, 4)}},
		{"Permute", func(tp *Tape, x ...*Node) *Node { return tp.Permute(x[0], 2, 0, 3, 1) }, []in{randn(1, 2, 3, 4, 2)}},
		{"Slice", func(tp *Tape, x ...*Node) *Node { return tp.Slice(x[0], 1, 1, 3) }, []in{randn(1, 2, 4, 3)}},
		{"Sum", func(tp *Tape, x ...*Node) *Node { return tp.Sum(x[0]) }, []in{randn(1, 3, 4)}},
		{"Mean", func(tp *Tape, x ...*Node) *Node { return tp.Mean(x[0]) }, []in{randn(1, 3, 4)}},
		{"SumAxis0", func(tp *Tape, x ...*Node) *Node { return tp.SumAxis(x[0], 0) }, []in{randn(1, 3, 4, 2)}},
		{"SumAxis1", func(tp *Tape, x ...*Node) *Node { return tp.SumAxis(x[0], 1) }, []in{randn(1, 3, 4, 2)}},
		{"MeanAxisLast", func(tp *Tape, x ...*Node) *Node { return tp.MeanAxis(x[0], -1) }, []in{randn(1, 3, 4, 2)}},
		{"LayerNorm", func(tp *Tape, x ...*Node) *Node { return tp.LayerNorm(x[0], x[1], x[2], 1e-5) }, []in{randn(1, 3, 5), randn(2, 5), randn(3, 5)}},
		{"LayerNormBare", func(tp *Tape, x ...*Node) *Node { return tp.LayerNorm(x[0], nil, nil, 1e-5) }, []in{randn(1, 2, 3, 4)}},
		{"Dropout", func(tp *Tape, x ...*Node) *Node { return tp.Dropout(x[0], 0.4) }, []in{randn(1, 4, 5)}},
		{"Conv2D", func(tp *Tape, x ...*Node) *Node { return tp.Conv2D(x[0], x[1], x[2], 1, 0) }, []in{randn(1, 2, 2, 5, 5), randn(2, 3, 2, 3, 3), randn(3, 3)}},
		{"Conv2DPad", func(tp *Tape, x ...*Node) *Node { return tp.Conv2D(x[0], x[1], nil, 1, 1) }, []in{randn(1, 2, 3, 4, 5), randn(2, 2, 3, 3, 3)}},
		{"Conv2DStride", func(tp *Tape, x ...*Node) *Node { return tp.Conv2D(x[0], x[1], x[2], 2, 1) }, []in{randn(1, 2, 2, 6, 5), randn(2, 3, 2, 3, 2), randn(3, 3)}},
		{"Conv2D1x1", func(tp *Tape, x ...*Node) *Node { return tp.Conv2D(x[0], x[1], x[2], 1, 0) }, []in{randn(1, 3, 4, 2, 3), randn(2, 2, 4, 1, 1), randn(3, 2)}},
		{"MaxPool2D", func(tp *Tape, x ...*Node) *Node { return tp.MaxPool2D(x[0], 2, 2) }, []in{distinct(1, 2, 2, 4, 6)}},
		{"MaxPool2DOverlap", func(tp *Tape, x ...*Node) *Node { return tp.MaxPool2D(x[0], 3, 1) }, []in{distinct(1, 1, 2, 5, 4)}},
		{"AvgPool2D", func(tp *Tape, x ...*Node) *Node { return tp.AvgPool2D(x[0], 2, 2) }, []in{randn(1, 2, 2, 4, 5)}},
		{"AvgPool2DOverlap", func(tp *Tape, x ...*Node) *Node { return tp.AvgPool2D(x[0], 3, 2) }, []in{randn(1, 1, 2, 5, 5)}},
		{"Attention", func(tp *Tape, x ...*Node) *Node { return tp.Attention(x[0], x[1], x[2], 2, nil) }, []in{randn(1, 2, 3, 4), randn(2, 2, 4, 4), randn(3, 2, 4, 6)}},
		{"AttentionMasked", func(tp *Tape, x ...*Node) *Node { return tp.Attention(x[0], x[1], x[2], 2, keyMask) }, []in{randn(1, 2, 3, 4), randn(2, 2, 4, 4), randn(3, 2, 4, 4)}},
		{"BCEWithLogits", func(tp *Tape, x ...*Node) *Node { return tp.BCEWithLogits(x[0], bceTargets) }, []in{randn(1, 2, 3)}},
		{"WeightedBCEWithLogits", func(tp *Tape, x ...*Node) *Node { return tp.WeightedBCEWithLogits(x[0], bceTargets, bceWeights) }, []in{randn(1, 2, 3)}},
		{"MSE", func(tp *Tape, x ...*Node) *Node { return tp.MSE(x[0], mseTarget) }, []in{randn(1, 2, 3)}},
		{"SoftmaxCrossEntropy", func(tp *Tape, x ...*Node) *Node { return tp.SoftmaxCrossEntropy(x[0], labels) }, []in{randn(1, 4, 3)}},
		{"Composite", func(tp *Tape, x ...*Node) *Node {
			h := tp.Tanh(tp.Add(tp.MatMul(x[0], x[1]), x[2]))
			return tp.Mean(tp.LogSigmoid(tp.Sub(h, tp.Scale(h, 0.5))))
		}, []in{randn(1, 3, 4), randn(2, 4, 2), randn(3, 2)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { gradcheck(t, c.f, c.inputs...) })
	}
}

// TestGradcheckCatchesWrongGradient makes sure the checker is not vacuous.
func TestGradcheckCatchesWrongGradient(t *testing.T) {
	wrong := func(tp *Tape, x ...*Node) *Node {
		n := tp.Scale(x[0], 2)
		n.farg = 3 // the backward pass now uses the wrong factor
		return n
	}
	if msgs := gradDiff(1e-2, 1e-2, 1e-3, wrong, randn(1, 2, 2)); len(msgs) == 0 {
		t.Fatal("gradcheck accepted a wrong gradient")
	}
}
