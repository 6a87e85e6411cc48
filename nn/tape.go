package nn

import (
	"fmt"
	"math/rand/v2"
	"runtime"
)

// Tape records the operations of a forward pass so that Backward can propagate gradients
// through them in reverse order.
//
// Contract:
//   - A Tape is used by one goroutine at a time. Ops may run parallel goroutines of their
//     own (up to Options.Workers) and wait for them before returning.
//   - Every Node, and every Tensor an op returns, lives in the Tape's arenas and is valid
//     until the next Reset. Reset recycles them: a loop that records the same graph each
//     step (the usual training loop) reuses the same buffers, positionally, and allocates
//     almost nothing after its first step.
//   - Parameter leaves (Param) are the exception: their Value and Grad belong to the Param
//     and survive Reset; gradients accumulate into Param.Grad until an optimizer step or
//     Param.ZeroGrad clears them.
//   - Randomness (Dropout) comes from the Tape's own generator, seeded by Options.Seed, so a
//     run is reproducible. Results do not depend on Options.Workers.
type Tape struct {
	nodes   []*[nodeChunk]Node
	nnodes  int
	order   []*Node
	tensors []*[tensorChunk]Tensor
	ntens   int
	f32     f32Arena
	i32     i32Arena
	gemm    *gemmer
	workers int
	src     *rand.PCG
	rng     *rand.Rand
	train   bool
}

const (
	// seedMix derives the second PCG word from a seed.
	seedMix = 0x9e3779b97f4a7c15

	nodeChunk   = 256
	tensorChunk = 256
)

// Options configure a Tape.
type Options struct {
	// Workers is the number of goroutines an op may use; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// Seed seeds the Tape's random generator (Dropout).
	Seed uint64
	// Eval starts the Tape in evaluation mode (Dropout is the identity).
	Eval bool
}

// DefaultOptions returns the defaults: all processors, seed 1, training mode.
func DefaultOptions() Options { return Options{Seed: 1} }

// NewTape returns an empty Tape.
func NewTape(opt Options) *Tape {
	w := opt.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	src := rand.NewPCG(opt.Seed, opt.Seed^seedMix)
	return &Tape{
		gemm:    newGemmer(w),
		workers: w,
		src:     src,
		rng:     rand.New(src),
		train:   !opt.Eval,
	}
}

// Reset forgets the recorded graph and recycles its memory for the next one. Nodes and
// tensors from before the Reset must not be used afterwards. The random generator is not
// reseeded (see Reseed).
func (t *Tape) Reset() {
	for _, c := range t.nodes {
		clear(c[:])
	}
	t.nnodes = 0
	clear(t.order)
	t.order = t.order[:0]
	t.ntens = 0
	t.f32.reset()
	t.i32.reset()
}

// Reseed restarts the Tape's random generator from seed.
func (t *Tape) Reseed(seed uint64) { t.src.Seed(seed, seed^seedMix) }

// SetTraining switches between training (true) and evaluation mode.
func (t *Tape) SetTraining(on bool) { t.train = on }

// Training reports whether the Tape is in training mode.
func (t *Tape) Training() bool { return t.train }

// Workers returns the number of goroutines an op may use.
func (t *Tape) Workers() int { return t.workers }

// Rand returns the Tape's random generator.
func (t *Tape) Rand() *rand.Rand { return t.rng }

// Node is a value in a recorded graph: a leaf (constant, variable or parameter) or the
// result of an op. Value is set when the node is created; Grad is set by Backward (for a
// node through which the loss depends on a variable or parameter) and is nil otherwise.
type Node struct {
	// Value is the node's value. It must not be modified after other ops have used it.
	Value *Tensor
	// Grad is ∂loss/∂Value after Backward, or nil where no gradient flowed.
	Grad *Tensor

	tape     *Tape
	param    *Param
	needGrad bool
	back     func(t *Tape, n *Node)

	a, b, c *Node   // inputs
	ins     []*Node // inputs of variadic ops (Concat)
	iarg    [6]int  // integer attributes of the op
	farg    float32 // scalar attribute of the op
	aux     *Tensor // tensors saved for the backward pass
	aux2    *Tensor
	idx     []int32 // saved indices (argmax, gather rows)
}

// RequiresGrad reports whether a gradient will flow into this node during Backward.
func (n *Node) RequiresGrad() bool { return n.needGrad }

// Shape returns the shape of the node's value.
func (n *Node) Shape() []int { return n.Value.Shape }

// Param returns the parameter this node is a leaf for, or nil.
func (n *Node) Param() *Param { return n.param }

// Item returns the value of a one-element node.
func (n *Node) Item() float32 {
	if n.Value.Len() != 1 {
		panic(fmt.Sprintf("nn: Item of a node of shape %v", n.Value.Shape))
	}
	return n.Value.Data[0]
}

// newNode takes a zeroed node from the arena and records it.
func (t *Tape) newNode() *Node {
	ci, i := t.nnodes/nodeChunk, t.nnodes%nodeChunk
	if ci == len(t.nodes) {
		t.nodes = append(t.nodes, new([nodeChunk]Node))
	}
	n := &t.nodes[ci][i]
	t.nnodes++
	n.tape = t
	t.order = append(t.order, n)
	return n
}

// tensorView returns an arena Tensor header of the given shape over data (no copy).
func (t *Tape) tensorView(data []float32, shape ...int) *Tensor {
	ci, i := t.ntens/tensorChunk, t.ntens%tensorChunk
	if ci == len(t.tensors) {
		t.tensors = append(t.tensors, new([tensorChunk]Tensor))
	}
	x := &t.tensors[ci][i]
	t.ntens++
	x.setShape(shape)
	if len(data) != x.Len() {
		panic(fmt.Sprintf("nn: %d elements for shape %s", len(data), shapeString(shape)))
	}
	x.Data = data
	return x
}

// zeros returns a zeroed arena tensor.
func (t *Tape) zeros(shape ...int) *Tensor {
	return t.tensorView(t.f32.get(shapeLen(shape), true), shape...)
}

// empty returns an arena tensor whose contents are garbage; the caller overwrites all of
// it.
func (t *Tape) empty(shape ...int) *Tensor {
	return t.tensorView(t.f32.get(shapeLen(shape), false), shape...)
}

// Const records a constant leaf: no gradient flows into it. The tensor is referenced, not
// copied; the caller must leave it unchanged until Backward has run.
func (t *Tape) Const(x *Tensor) *Node {
	n := t.newNode()
	n.Value = x
	return n
}

// Variable records a leaf that receives a gradient (in its Grad after Backward), for
// gradients with respect to inputs. The tensor is referenced, not copied.
func (t *Tape) Variable(x *Tensor) *Node {
	n := t.newNode()
	n.Value = x
	n.needGrad = true
	return n
}

// Param records a parameter leaf. Its gradient accumulates into p.Grad.
func (t *Tape) Param(p *Param) *Node {
	n := t.newNode()
	n.Value = p.Value
	n.Grad = p.Grad
	n.param = p
	n.needGrad = true
	return n
}

// op records the result of an op with inputs a, b, c (any may be nil) and value v.
func (t *Tape) op(v *Tensor, back func(*Tape, *Node), a, b, c *Node) *Node {
	n := t.newNode()
	n.Value = v
	n.a, n.b, n.c = a, b, c
	n.needGrad = (a != nil && a.needGrad) || (b != nil && b.needGrad) || (c != nil && c.needGrad)
	if n.needGrad {
		n.back = back
	}
	return n
}

// grad returns n's gradient tensor for accumulation, creating a zero one if needed. A
// dense gradient into a parameter marks it dense for the optimizer.
func (t *Tape) grad(n *Node) *Tensor {
	if n.param != nil {
		n.param.dense = true
		return n.Grad
	}
	if n.Grad == nil {
		n.Grad = t.zeros(n.Value.Shape...)
	}
	return n.Grad
}

// gradFresh is grad for an op that writes every element of the gradient: when n has no
// gradient yet it returns a new, unzeroed buffer and true, and the caller must overwrite
// all of it; otherwise the accumulating buffer and false.
func (t *Tape) gradFresh(n *Node) (*Tensor, bool) {
	if n.param == nil && n.Grad == nil {
		n.Grad = t.empty(n.Value.Shape...)
		return n.Grad, true
	}
	return t.grad(n), false
}

// Backward propagates the gradient of loss, which must have one element, to every
// variable and parameter it depends on. It is called at most once per recorded graph.
func (t *Tape) Backward(loss *Node) {
	if loss.Value.Len() != 1 {
		panic(fmt.Sprintf("nn: Backward of a node of shape %v; use BackwardFrom", loss.Value.Shape))
	}
	g := t.zeros(loss.Value.Shape...)
	g.Data[0] = 1
	t.BackwardFrom(loss, g)
}

// BackwardFrom propagates the gradient seed (of the same shape as out) from out.
func (t *Tape) BackwardFrom(out *Node, seed *Tensor) {
	if out.tape != t {
		panic("nn: Backward of a node recorded on another tape")
	}
	mustSameShape("BackwardFrom", out.Value, seed)
	if !out.needGrad {
		return
	}
	g := t.grad(out)
	for i, v := range seed.Data {
		g.Data[i] += v
	}
	last := -1
	for i := len(t.order) - 1; i >= 0; i-- {
		if t.order[i] == out {
			last = i
			break
		}
	}
	for i := last; i >= 0; i-- {
		n := t.order[i]
		if n.back != nil && n.Grad != nil {
			n.back(t, n)
		}
	}
}

// f32Arena hands out float32 buffers positionally: after reset, the i-th request reuses
// the i-th buffer of the previous round when it is large enough.
type f32Arena struct {
	bufs [][]float32
	next int
}

func (a *f32Arena) get(n int, zero bool) []float32 {
	if a.next < len(a.bufs) && cap(a.bufs[a.next]) >= n {
		b := a.bufs[a.next][:n]
		a.next++
		if zero {
			clear(b)
		}
		return b
	}
	b := make([]float32, n)
	if a.next < len(a.bufs) {
		a.bufs[a.next] = b
	} else {
		a.bufs = append(a.bufs, b)
	}
	a.next++
	return b
}

func (a *f32Arena) reset() { a.next = 0 }

// i32Arena is f32Arena for int32 buffers.
type i32Arena struct {
	bufs [][]int32
	next int
}

func (a *i32Arena) get(n int) []int32 {
	if a.next < len(a.bufs) && cap(a.bufs[a.next]) >= n {
		b := a.bufs[a.next][:n]
		a.next++
		return b
	}
	b := make([]int32, n)
	if a.next < len(a.bufs) {
		a.bufs[a.next] = b
	} else {
		a.bufs = append(a.bufs, b)
	}
	a.next++
	return b
}

func (a *i32Arena) reset() { a.next = 0 }
