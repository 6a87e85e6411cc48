package nn

import "fmt"

// Reshape returns a with a new shape of the same number of elements; one dimension may be
// −1 and is then inferred. The result shares a's data (no copy).
func (t *Tape) Reshape(a *Node, shape ...int) *Node {
	var s [maxDims]int
	if len(shape) > maxDims {
		panic(fmt.Sprintf("nn: Reshape to %v: more than %d dimensions", shape, maxDims))
	}
	copy(s[:], shape)
	infer, known := -1, 1
	for i, d := range shape {
		if d == -1 && infer < 0 {
			infer = i
			continue
		}
		known *= d
	}
	if infer >= 0 && known > 0 {
		s[infer] = a.Value.Len() / known
	}
	if shapeLen(s[:len(shape)]) != a.Value.Len() {
		panic(fmt.Sprintf("nn: Reshape of %v to %v", a.Value.Shape, shape))
	}
	out := t.tensorView(a.Value.Data, s[:len(shape)]...)
	return t.op(out, backIdentity, a, nil, nil)
}

// Flatten reshapes [N, ...] to [N, rest].
func (t *Tape) Flatten(a *Node) *Node {
	return t.Reshape(a, a.Value.Shape[0], a.Value.Len()/max(1, a.Value.Shape[0]))
}

// Transpose returns the transpose of a 2-D a.
func (t *Tape) Transpose(a *Node) *Node {
	if a.Value.Dims() != 2 {
		panic(fmt.Sprintf("nn: Transpose of shape %v (use Permute)", a.Value.Shape))
	}
	return t.Permute(a, 1, 0)
}

// Permute reorders the axes of a (at most 6): axis i of the result is axis perm[i] of a.
func (t *Tape) Permute(a *Node, perm ...int) *Node {
	nd := a.Value.Dims()
	if len(perm) != nd || nd > 6 {
		panic(fmt.Sprintf("nn: Permute %v of shape %v", perm, a.Value.Shape))
	}
	var seen [6]bool
	var shape [6]int
	for i, p := range perm {
		if p < 0 || p >= nd || seen[p] {
			panic(fmt.Sprintf("nn: Permute: %v is not a permutation", perm))
		}
		seen[p] = true
		shape[i] = a.Value.Shape[p]
	}
	out := t.empty(shape[:nd]...)
	permuteRun(a.Value.Shape, perm, a.Value.Data, out.Data, false)
	r := t.op(out, backPermute, a, nil, nil)
	copy(r.iarg[:], perm)
	return r
}

func backPermute(t *Tape, r *Node) {
	nd := r.a.Value.Dims()
	permuteRun(r.a.Value.Shape, r.iarg[:nd], t.grad(r.a).Data, r.Grad.Data, true)
}

// permuteRun walks the permuted result in order; element o corresponds to element i of
// the source. Forward it copies src[i] to dst[o]; with back it adds dst[o] into src[i].
func permuteRun(srcShape, perm []int, src, dst []float32, back bool) {
	nd := len(srcShape)
	var stride, ostride, shape, idx [6]int
	s := 1
	for d := nd - 1; d >= 0; d-- {
		stride[d] = s
		s *= srcShape[d]
	}
	for i, p := range perm {
		shape[i] = srcShape[p]
		ostride[i] = stride[p]
	}
	total := shapeLen(srcShape)
	if total == 0 {
		return
	}
	inner, is := shape[nd-1], ostride[nd-1]
	off := 0
	for o := 0; o < total; o += inner {
		row := dst[o : o+inner]
		if back {
			for j, v := range row {
				src[off+j*is] += v
			}
		} else {
			for j := range row {
				row[j] = src[off+j*is]
			}
		}
		for d := nd - 2; d >= 0; d-- {
			idx[d]++
			off += ostride[d]
			if idx[d] < shape[d] {
				break
			}
			off -= ostride[d] * shape[d]
			idx[d] = 0
		}
	}
}

// Concat joins nodes along axis; all other dimensions must agree.
func (t *Tape) Concat(axis int, nodes ...*Node) *Node {
	if len(nodes) == 0 {
		panic("nn: Concat of nothing")
	}
	first := nodes[0].Value.Shape
	outer, _, inner, ax := splitAxis("Concat", first, axis)
	total := 0
	for _, n := range nodes {
		s := n.Value.Shape
		if len(s) != len(first) || !sameShape(s[:ax], first[:ax]) || !sameShape(s[ax+1:], first[ax+1:]) {
			panic(fmt.Sprintf("nn: Concat along %d of shapes %v and %v", ax, first, s))
		}
		total += s[ax]
	}
	var shape [maxDims]int
	copy(shape[:], first)
	shape[ax] = total
	out := t.empty(shape[:len(first)]...)
	row := total * inner
	off := 0
	needGrad := false
	for _, n := range nodes {
		w := n.Value.Shape[ax] * inner
		for o := 0; o < outer; o++ {
			copy(out.Data[o*row+off:o*row+off+w], n.Value.Data[o*w:(o+1)*w])
		}
		off += w
		needGrad = needGrad || n.needGrad
	}
	r := t.op(out, backConcat, nil, nil, nil)
	r.ins = append([]*Node(nil), nodes...)
	r.needGrad = needGrad
	if needGrad {
		r.back = backConcat
	}
	r.iarg = [6]int{outer, inner, ax}
	return r
}

func backConcat(t *Tape, r *Node) {
	outer, inner, ax := r.iarg[0], r.iarg[1], r.iarg[2]
	row := r.Value.Shape[ax] * inner
	g := r.Grad.Data
	off := 0
	for _, n := range r.ins {
		w := n.Value.Shape[ax] * inner
		if n.needGrad {
			gn := t.grad(n).Data
			for o := 0; o < outer; o++ {
				src := g[o*row+off : o*row+off+w]
				dst := gn[o*w : (o+1)*w]
				for i, v := range src {
					dst[i] += v
				}
			}
		}
		off += w
	}
}

// Slice returns elements [lo, hi) of a along axis.
func (t *Tape) Slice(a *Node, axis, lo, hi int) *Node {
	outer, n, inner, ax := splitAxis("Slice", a.Value.Shape, axis)
	if lo < 0 || hi > n || lo > hi {
		panic(fmt.Sprintf("nn: Slice [%d,%d) of axis %d of %v", lo, hi, ax, a.Value.Shape))
	}
	var shape [maxDims]int
	copy(shape[:], a.Value.Shape)
	shape[ax] = hi - lo
	out := t.empty(shape[:a.Value.Dims()]...)
	w := (hi - lo) * inner
	for o := 0; o < outer; o++ {
		copy(out.Data[o*w:(o+1)*w], a.Value.Data[(o*n+lo)*inner:(o*n+hi)*inner])
	}
	r := t.op(out, backSlice, a, nil, nil)
	r.iarg = [6]int{outer, n, inner, lo, hi}
	return r
}

func backSlice(t *Tape, r *Node) {
	outer, n, inner, lo, hi := r.iarg[0], r.iarg[1], r.iarg[2], r.iarg[3], r.iarg[4]
	ga, g := t.grad(r.a).Data, r.Grad.Data
	w := (hi - lo) * inner
	for o := 0; o < outer; o++ {
		dst := ga[(o*n+lo)*inner : (o*n+hi)*inner]
		for i, v := range g[o*w : (o+1)*w] {
			dst[i] += v
		}
	}
}

// Gather returns the rows idx of table (an embedding lookup): table is [R, ...] and the
// result is [len(idx), ...]. Indices may repeat. The indices are copied, so the caller may
// reuse idx at once.
//
// When table is a parameter leaf, the gradient is sparse: only the gathered rows receive
// it, and optimizers update only those rows (see Param). Otherwise it is accumulated into
// the table's dense gradient. Out-of-range indices panic.
func (t *Tape) Gather(table *Node, idx []int) *Node {
	rowsN := table.Value.Shape[0]
	w := table.Value.Len() / max(1, rowsN)
	var shape [maxDims]int
	shape[0] = len(idx)
	copy(shape[1:], table.Value.Shape[1:])
	out := t.empty(shape[:table.Value.Dims()]...)
	saved := t.i32.get(len(idx))
	for i, r := range idx {
		if r < 0 || r >= rowsN {
			panic(fmt.Sprintf("nn: Gather: index %d out of range [0,%d)", r, rowsN))
		}
		saved[i] = int32(r)
		copy(out.Data[i*w:(i+1)*w], table.Value.Data[r*w:(r+1)*w])
	}
	n := t.op(out, backGather, table, nil, nil)
	n.idx = saved
	return n
}

func backGather(t *Tape, r *Node) {
	table := r.a
	w := table.Value.Len() / max(1, table.Value.Shape[0])
	g := r.Grad.Data
	if p := table.param; p != nil {
		for i, row := range r.idx {
			p.addRow(int(row), g[i*w:(i+1)*w])
		}
		return
	}
	gt := t.grad(table).Data
	for i, row := range r.idx {
		dst := gt[int(row)*w : int(row+1)*w]
		for j, v := range g[i*w : (i+1)*w] {
			dst[j] += v
		}
	}
}
