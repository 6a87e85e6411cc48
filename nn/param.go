package nn

import "fmt"

// Param is a trainable tensor with its gradient. It outlives tapes: record it on a Tape
// with Tape.Param each step; Backward accumulates into Grad; an optimizer's Step applies
// and clears the gradient.
//
// Sparse gradients: when every gradient a Param received since it was last cleared came
// through Gather (an embedding lookup), only the gathered rows (the first dimension) hold
// non-zero gradient; the Param remembers them and optimizers update and clear only those
// rows. Any other op that propagates into the Param makes its gradient dense.
//
// A Param is not safe for concurrent use: one goroutine records, backpropagates and steps.
type Param struct {
	// Name identifies the parameter in saved files. Names in one set must be unique.
	Name string
	// Value holds the parameter; optimizers update it in place.
	Value *Tensor
	// Grad accumulates ∂loss/∂Value; same shape as Value.
	Grad *Tensor

	dense bool     // some dense gradient arrived since the last clear
	rows  []int32  // rows touched by sparse gradients, in order of first touch
	mark  []uint64 // bitset of the rows in rows
}

// NewParam returns a zero parameter of the given shape.
func NewParam(name string, shape ...int) *Param {
	return &Param{Name: name, Value: New(shape...), Grad: New(shape...)}
}

// NewParamFrom returns a parameter holding value (no copy) with a zero gradient.
func NewParamFrom(name string, value *Tensor) *Param {
	return &Param{Name: name, Value: value, Grad: New(value.Shape...)}
}

// rowLen is the number of elements in one row (first-dimension slice).
func (p *Param) rowLen() int {
	if p.Value.Shape[0] == 0 {
		return 0
	}
	return p.Value.Len() / p.Value.Shape[0]
}

// HasGrad reports whether any gradient arrived since the last clear.
func (p *Param) HasGrad() bool { return p.dense || len(p.rows) > 0 }

// SparseRows returns the rows touched by sparse gradients and true when the gradient is
// sparse (no dense contribution). The slice belongs to the Param and is valid until the
// next clear.
func (p *Param) SparseRows() ([]int32, bool) {
	if p.dense {
		return nil, false
	}
	return p.rows, true
}

// addRow adds g to row r of the gradient and remembers r as touched.
func (p *Param) addRow(r int, g []float32) {
	if p.mark == nil {
		p.mark = make([]uint64, (p.Value.Shape[0]+63)/64)
	}
	if p.mark[r>>6]&(1<<(r&63)) == 0 {
		p.mark[r>>6] |= 1 << (r & 63)
		p.rows = append(p.rows, int32(r))
	}
	w := len(g)
	dst := p.Grad.Data[r*w : r*w+w]
	for i, v := range g {
		dst[i] += v
	}
}

// ZeroGrad clears the gradient: only the touched rows when it is sparse.
func (p *Param) ZeroGrad() {
	if p.dense {
		p.Grad.Zero()
	} else {
		w := p.rowLen()
		for _, r := range p.rows {
			clear(p.Grad.Data[int(r)*w : int(r)*w+w])
		}
	}
	for _, r := range p.rows {
		p.mark[r>>6] &^= 1 << (r & 63)
	}
	p.rows = p.rows[:0]
	p.dense = false
}

// String describes the parameter.
func (p *Param) String() string { return fmt.Sprintf("Param(%s %v)", p.Name, p.Value.Shape) }

// ZeroGrads clears the gradients of ps.
func ZeroGrads(ps []*Param) {
	for _, p := range ps {
		p.ZeroGrad()
	}
}

// CountParams returns the total number of elements in ps.
func CountParams(ps []*Param) int {
	n := 0
	for _, p := range ps {
		n += p.Value.Len()
	}
	return n
}
