package nn

import (
	"fmt"
	"math"
)

// Losses return the mean over elements (or examples), shape [1], accumulated in float64.
// Targets and weights are constant tensors, referenced until Backward has run.

// BCEWithLogits returns the mean binary cross-entropy between σ(logits) and targets in
// [0,1], computed from the logits as max(x,0) − x·y + log1p(e^−|x|) so that it never
// overflows. targets has the shape of logits.
func (t *Tape) BCEWithLogits(logits *Node, targets *Tensor) *Node {
	return t.WeightedBCEWithLogits(logits, targets, nil)
}

// WeightedBCEWithLogits is BCEWithLogits with a weight per element (nil: all 1); the sum
// of weighted losses is divided by the number of elements.
func (t *Tape) WeightedBCEWithLogits(logits *Node, targets, weights *Tensor) *Node {
	mustSameShape("BCEWithLogits", logits.Value, targets)
	if weights != nil {
		mustSameShape("BCEWithLogits", logits.Value, weights)
	}
	x, y := logits.Value.Data, targets.Data
	var s float64
	for i, v := range x {
		xv, yv := float64(v), float64(y[i])
		l := math.Max(xv, 0) - xv*yv + math.Log1p(math.Exp(-math.Abs(xv)))
		if weights != nil {
			l *= float64(weights.Data[i])
		}
		s += l
	}
	out := t.empty(1)
	out.Data[0] = float32(s / float64(max(1, len(x))))
	n := t.op(out, backBCE, logits, nil, nil)
	n.aux, n.aux2 = targets, weights
	return n
}

func backBCE(t *Tape, n *Node) {
	x, y := n.a.Value.Data, n.aux.Data
	gx := t.grad(n.a).Data
	g := n.Grad.Data[0] / float32(max(1, len(x)))
	for i, v := range x {
		d := g * (sigmoid(v) - y[i])
		if n.aux2 != nil {
			d *= n.aux2.Data[i]
		}
		gx[i] += d
	}
}

// MSE returns the mean of (pred − target)² over elements.
func (t *Tape) MSE(pred *Node, target *Tensor) *Node {
	mustSameShape("MSE", pred.Value, target)
	var s float64
	for i, v := range pred.Value.Data {
		d := float64(v) - float64(target.Data[i])
		s += d * d
	}
	out := t.empty(1)
	out.Data[0] = float32(s / float64(max(1, len(target.Data))))
	n := t.op(out, backMSE, pred, nil, nil)
	n.aux = target
	return n
}

func backMSE(t *Tape, n *Node) {
	p, y := n.a.Value.Data, n.aux.Data
	gp := t.grad(n.a).Data
	g := 2 * n.Grad.Data[0] / float32(max(1, len(p)))
	for i, v := range p {
		gp[i] += g * (v - y[i])
	}
}

// SoftmaxCrossEntropy returns the mean over rows of −log softmax(logits)[label]: logits
// is [N, C] and labels holds N class indices in [0, C). The labels are copied.
func (t *Tape) SoftmaxCrossEntropy(logits *Node, labels []int) *Node {
	if logits.Value.Dims() != 2 || logits.Value.Shape[0] != len(labels) {
		panic(fmt.Sprintf("nn: SoftmaxCrossEntropy of %v with %d labels", logits.Value.Shape, len(labels)))
	}
	rows, c := logits.Value.Shape[0], logits.Value.Shape[1]
	probs := t.empty(rows, c)
	saved := t.i32.get(rows)
	var s float64
	for r, l := range labels {
		if l < 0 || l >= c {
			panic(fmt.Sprintf("nn: SoftmaxCrossEntropy: label %d out of range [0,%d)", l, c))
		}
		saved[r] = int32(l)
		xr := logits.Value.Data[r*c : (r+1)*c]
		s += logSumExp(xr) - float64(xr[l])
		softmaxRow(probs.Data[r*c:(r+1)*c], xr, nil)
	}
	out := t.empty(1)
	out.Data[0] = float32(s / float64(max(1, rows)))
	n := t.op(out, backSoftmaxCE, logits, nil, nil)
	n.aux, n.idx = probs, saved
	return n
}

func backSoftmaxCE(t *Tape, n *Node) {
	rows, c := n.a.Value.Shape[0], n.a.Value.Shape[1]
	gx, p := t.grad(n.a).Data, n.aux.Data
	g := n.Grad.Data[0] / float32(max(1, rows))
	for r := 0; r < rows; r++ {
		for j := 0; j < c; j++ {
			d := p[r*c+j]
			if j == int(n.idx[r]) {
				d--
			}
			gx[r*c+j] += g * d
		}
	}
}
