package nn

import (
	"math/rand/v2"
)

// Layers bundle parameters with the ops that use them. Each is plain data (its Params are
// exported) with a Forward that records on a Tape, and a Params method listing its
// parameters for an optimizer or a parameter file. Parameter names are the layer's name
// plus a suffix (".W", ".b", ...), so a model built from layers with unique names has
// unique parameter names.

// Linear is y = x·W + b with W [in, out] and b [out].
type Linear struct {
	W, B *Param // B is nil without bias
}

// NewLinear returns a Linear layer with Xavier-uniform weights and zero bias.
func NewLinear(name string, in, out int, bias bool, rng *rand.Rand) *Linear {
	l := &Linear{W: NewParam(name+".W", in, out)}
	XavierUniform(l.W.Value, in, out, rng)
	if bias {
		l.B = NewParam(name+".b", out)
	}
	return l
}

// Forward applies the layer to x [..., in].
func (l *Linear) Forward(t *Tape, x *Node) *Node {
	y := t.MatMul(x, t.Param(l.W))
	if l.B != nil {
		y = t.Add(y, t.Param(l.B))
	}
	return y
}

// Params implements the layer convention.
func (l *Linear) Params() []*Param {
	if l.B == nil {
		return []*Param{l.W}
	}
	return []*Param{l.W, l.B}
}

// Embedding is a lookup table [n, dim] with sparse gradients.
type Embedding struct {
	Table *Param
}

// NewEmbedding returns an Embedding with N(0, std²) entries.
func NewEmbedding(name string, n, dim int, std float64, rng *rand.Rand) *Embedding {
	e := &Embedding{Table: NewParam(name+".E", n, dim)}
	Normal(e.Table.Value, std, rng)
	return e
}

// Forward returns the rows idx, [len(idx), dim].
func (e *Embedding) Forward(t *Tape, idx []int) *Node { return t.Gather(t.Param(e.Table), idx) }

// Params implements the layer convention.
func (e *Embedding) Params() []*Param { return []*Param{e.Table} }

// Conv2DLayer is a convolution with filters [F, C, K, K] and bias [F].
type Conv2DLayer struct {
	W, B        *Param
	Stride, Pad int
}

// NewConv2D returns a convolution layer with He-normal filters and zero bias.
func NewConv2D(name string, in, out, k, stride, pad int, rng *rand.Rand) *Conv2DLayer {
	c := &Conv2DLayer{W: NewParam(name+".W", out, in, k, k), B: NewParam(name+".b", out), Stride: stride, Pad: pad}
	HeNormal(c.W.Value, in*k*k, rng)
	return c
}

// Forward applies the layer to x [N, C, H, W].
func (c *Conv2DLayer) Forward(t *Tape, x *Node) *Node {
	return t.Conv2D(x, t.Param(c.W), t.Param(c.B), c.Stride, c.Pad)
}

// Params implements the layer convention.
func (c *Conv2DLayer) Params() []*Param { return []*Param{c.W, c.B} }

// LayerNormLayer is LayerNorm with a learned gain (initially 1) and bias (0).
type LayerNormLayer struct {
	Gain, Bias *Param
	Eps        float32
}

// NewLayerNorm returns a LayerNormLayer over rows of size dim with eps 1e-5.
func NewLayerNorm(name string, dim int) *LayerNormLayer {
	l := &LayerNormLayer{Gain: NewParam(name+".g", dim), Bias: NewParam(name+".b", dim), Eps: 1e-5}
	l.Gain.Value.Fill(1)
	return l
}

// Forward normalises the rows of x.
func (l *LayerNormLayer) Forward(t *Tape, x *Node) *Node {
	return t.LayerNorm(x, t.Param(l.Gain), t.Param(l.Bias), l.Eps)
}

// Params implements the layer convention.
func (l *LayerNormLayer) Params() []*Param { return []*Param{l.Gain, l.Bias} }

// MultiHeadAttention projects queries, keys and values, attends with Heads heads and
// projects the result (Vaswani et al.): Wo·Attention(Wq·q, Wk·kv, Wv·kv).
type MultiHeadAttention struct {
	Q, K, V, O *Linear
	Heads      int
}

// NewMultiHeadAttention returns a layer of model width dim (a multiple of heads).
func NewMultiHeadAttention(name string, dim, heads int, rng *rand.Rand) *MultiHeadAttention {
	return &MultiHeadAttention{
		Q:     NewLinear(name+".q", dim, dim, true, rng),
		K:     NewLinear(name+".k", dim, dim, true, rng),
		V:     NewLinear(name+".v", dim, dim, true, rng),
		O:     NewLinear(name+".o", dim, dim, true, rng),
		Heads: heads,
	}
}

// Forward attends from q [B,Lq,dim] over kv [B,Lk,dim]; mask as in Tape.Attention.
func (m *MultiHeadAttention) Forward(t *Tape, q, kv *Node, mask *Tensor) *Node {
	a := t.Attention(m.Q.Forward(t, q), m.K.Forward(t, kv), m.V.Forward(t, kv), m.Heads, mask)
	return m.O.Forward(t, a)
}

// Params implements the layer convention.
func (m *MultiHeadAttention) Params() []*Param {
	var ps []*Param
	for _, l := range []*Linear{m.Q, m.K, m.V, m.O} {
		ps = append(ps, l.Params()...)
	}
	return ps
}
