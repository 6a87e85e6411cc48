package nn

// Elementwise binary ops with NumPy broadcasting (see bcast): a bias [n] adds to every
// row of [m,n], a [m,1] column scales every column, a [1] scalar applies everywhere. The
// gradient of a stretched operand is summed over the stretched dimensions, in increasing
// result order.

type binKind uint8

const (
	binAdd binKind = iota
	binSub
	binMul
	binDiv
)

// Add returns a + b.
func (t *Tape) Add(a, b *Node) *Node { return t.binary(binAdd, a, b) }

// Sub returns a − b.
func (t *Tape) Sub(a, b *Node) *Node { return t.binary(binSub, a, b) }

// Mul returns a ⊙ b (elementwise).
func (t *Tape) Mul(a, b *Node) *Node { return t.binary(binMul, a, b) }

// Div returns a ⊘ b (elementwise). Division by zero follows IEEE 754.
func (t *Tape) Div(a, b *Node) *Node { return t.binary(binDiv, a, b) }

var binNames = [...]string{binAdd: "Add", binSub: "Sub", binMul: "Mul", binDiv: "Div"}

func (t *Tape) binary(kind binKind, a, b *Node) *Node {
	av, bv := a.Value.Data, b.Value.Data
	var out *Tensor
	if sameShape(a.Value.Shape, b.Value.Shape) {
		out = t.empty(a.Value.Shape...)
		binRun(kind, out.Data, av, bv, 1, 1)
	} else {
		p := newBcast(binNames[kind], a.Value.Shape, b.Value.Shape)
		out = t.empty(p.outShape()...)
		sa, sb := p.sa[p.nd-1], p.sb[p.nd-1]
		p.rows(func(o, ia, ib, n int) {
			binRun(kind, out.Data[o:o+n], av[ia:], bv[ib:], sa, sb)
		})
	}
	r := t.op(out, backBinary, a, b, nil)
	r.iarg[0] = int(kind)
	return r
}

// binRun computes out[j] = a[j·sa] op b[j·sb] for j < len(out).
func binRun(kind binKind, out, a, b []float32, sa, sb int) {
	if sa == 1 && sb == 1 {
		a, b = a[:len(out)], b[:len(out)]
		switch kind {
		case binAdd:
			for j := range out {
				out[j] = a[j] + b[j]
			}
		case binSub:
			for j := range out {
				out[j] = a[j] - b[j]
			}
		case binMul:
			for j := range out {
				out[j] = a[j] * b[j]
			}
		case binDiv:
			for j := range out {
				out[j] = a[j] / b[j]
			}
		}
		return
	}
	for j := range out {
		x, y := a[j*sa], b[j*sb]
		switch kind {
		case binAdd:
			out[j] = x + y
		case binSub:
			out[j] = x - y
		case binMul:
			out[j] = x * y
		case binDiv:
			out[j] = x / y
		}
	}
}

func backBinary(t *Tape, r *Node) {
	a, b := r.a, r.b
	kind := binKind(r.iarg[0])
	var ga, gb []float32
	if a.needGrad {
		ga = t.grad(a).Data
	}
	if b.needGrad {
		gb = t.grad(b).Data
	}
	g, av, bv := r.Grad.Data, a.Value.Data, b.Value.Data
	if sameShape(a.Value.Shape, b.Value.Shape) {
		binBack(kind, g, av, bv, ga, gb, 1, 1)
		return
	}
	p := newBcast(binNames[kind], a.Value.Shape, b.Value.Shape)
	sa, sb := p.sa[p.nd-1], p.sb[p.nd-1]
	p.rows(func(o, ia, ib, n int) {
		var gai, gbi []float32
		if ga != nil {
			gai = ga[ia:]
		}
		if gb != nil {
			gbi = gb[ib:]
		}
		binBack(kind, g[o:o+n], av[ia:], bv[ib:], gai, gbi, sa, sb)
	})
}

// binBack accumulates the gradients of one run: for j < len(g), a[j·sa] and b[j·sb] were
// combined into an element with gradient g[j]. ga or gb may be nil (not needed).
func binBack(kind binKind, g, a, b, ga, gb []float32, sa, sb int) {
	if kind == binAdd || kind == binSub {
		// The common bias case, vectorised: unit strides add g (or −g) as a whole run.
		if ga != nil && sa == 1 {
			addTo(ga[:len(g)], g)
			ga = nil
		}
		if gb != nil && sb == 1 && kind == binAdd {
			addTo(gb[:len(g)], g)
			gb = nil
		}
		if ga == nil && gb == nil {
			return
		}
	}
	for j, gj := range g {
		x, y := a[j*sa], b[j*sb]
		switch kind {
		case binAdd:
			if ga != nil {
				ga[j*sa] += gj
			}
			if gb != nil {
				gb[j*sb] += gj
			}
		case binSub:
			if ga != nil {
				ga[j*sa] += gj
			}
			if gb != nil {
				gb[j*sb] -= gj
			}
		case binMul:
			if ga != nil {
				ga[j*sa] += gj * y
			}
			if gb != nil {
				gb[j*sb] += gj * x
			}
		case binDiv:
			if ga != nil {
				ga[j*sa] += gj / y
			}
			if gb != nil {
				gb[j*sb] -= gj * x / (y * y)
			}
		}
	}
}

// Scale returns s·a.
func (t *Tape) Scale(a *Node, s float32) *Node {
	out := t.empty(a.Value.Shape...)
	for i, v := range a.Value.Data {
		out.Data[i] = s * v
	}
	r := t.op(out, backScale, a, nil, nil)
	r.farg = s
	return r
}

func backScale(t *Tape, r *Node) {
	ga := t.grad(r.a).Data
	s := r.farg
	for i, g := range r.Grad.Data {
		ga[i] += s * g
	}
}

// AddScalar returns a + s.
func (t *Tape) AddScalar(a *Node, s float32) *Node {
	out := t.empty(a.Value.Shape...)
	for i, v := range a.Value.Data {
		out.Data[i] = v + s
	}
	return t.op(out, backIdentity, a, nil, nil)
}

// backIdentity passes the gradient through unchanged (same number of elements).
func backIdentity(t *Tape, r *Node) {
	ga, fresh := t.gradFresh(r.a)
	if fresh {
		copy(ga.Data, r.Grad.Data)
		return
	}
	addTo(ga.Data, r.Grad.Data)
}
