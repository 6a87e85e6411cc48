package nn

import (
	"fmt"
	"math"
)

// Attention returns multi-head scaled dot-product attention, built from the primitives:
// per head h, softmax(q_h·k_hᵀ/√d_h)·v_h, heads concatenated. q is [B,Lq,D], k is
// [B,Lk,D] and v is [B,Lk,Dv]; D and Dv must be multiples of heads; the result is
// [B,Lq,Dv]. The inputs are already projected (see MultiHeadAttention for the layer with
// projections). mask, when not nil, broadcasts to the scores [B,heads,Lq,Lk] (for example
// a key-padding mask [B,1,1,Lk] or a causal mask [Lq,Lk]); zero entries are excluded, and
// a query with every key masked attends to nothing (zero output).
func (t *Tape) Attention(q, k, v *Node, heads int, mask *Tensor) *Node {
	qs, ks, vs := q.Value.Shape, k.Value.Shape, v.Value.Shape
	if len(qs) != 3 || len(ks) != 3 || len(vs) != 3 || heads < 1 ||
		qs[0] != ks[0] || ks[0] != vs[0] || qs[2] != ks[2] || ks[1] != vs[1] ||
		qs[2]%heads != 0 || vs[2]%heads != 0 {
		panic(fmt.Sprintf("nn: Attention of q %v, k %v, v %v with %d heads", qs, ks, vs, heads))
	}
	b, lq, lk, d, dv := qs[0], qs[1], ks[1], qs[2], vs[2]
	dh := d / heads
	qh := t.Permute(t.Reshape(q, b, lq, heads, dh), 0, 2, 1, 3) // [B,H,Lq,dh]
	kh := t.Permute(t.Reshape(k, b, lk, heads, dh), 0, 2, 1, 3) // [B,H,Lk,dh]
	vh := t.Permute(t.Reshape(v, b, lk, heads, dv/heads), 0, 2, 1, 3)
	scores := t.Scale(t.BatchedMatMul(qh, kh, false, true), float32(1/math.Sqrt(float64(dh))))
	var p *Node
	if mask != nil {
		p = t.MaskedSoftmax(scores, mask)
	} else {
		p = t.Softmax(scores)
	}
	o := t.BatchedMatMul(p, vh, false, false) // [B,H,Lq,dv/H]
	return t.Reshape(t.Permute(o, 0, 2, 1, 3), b, lq, dv)
}
