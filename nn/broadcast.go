package nn

import "fmt"

// maxDims is the most dimensions an op that broadcasts or permutes accepts.
const maxDims = 8

// bcast is a NumPy-style broadcast of two shapes: shapes are aligned at their last
// dimension, and a dimension of 1 (or a missing leading one) stretches to match the other.
// Strides of stretched dimensions are 0, so element o of the result reads a[ia] and b[ib]
// for the offsets the iteration yields.
type bcast struct {
	nd     int
	shape  [maxDims]int // result shape
	sa, sb [maxDims]int // element strides of a and b in the result's index space
}

func newBcast(op string, a, b []int) bcast {
	var p bcast
	p.nd = max(len(a), len(b))
	if p.nd > maxDims {
		panic(fmt.Sprintf("nn: %s: more than %d dimensions", op, maxDims))
	}
	strideA, strideB := 1, 1
	for d := p.nd - 1; d >= 0; d-- {
		da, db := 1, 1
		if i := d - (p.nd - len(a)); i >= 0 {
			da = a[i]
		}
		if i := d - (p.nd - len(b)); i >= 0 {
			db = b[i]
		}
		switch {
		case da == db:
			p.shape[d] = da
		case da == 1:
			p.shape[d] = db
		case db == 1:
			p.shape[d] = da
		default:
			panic(fmt.Sprintf("nn: %s: shapes %v and %v do not broadcast", op, a, b))
		}
		if da != 1 || p.shape[d] == 1 {
			p.sa[d] = strideA
		}
		if db != 1 || p.shape[d] == 1 {
			p.sb[d] = strideB
		}
		strideA *= da
		strideB *= db
	}
	return p
}

func (p *bcast) outShape() []int { return p.shape[:p.nd] }

// rows calls fn once per run of the last dimension: fn(o, ia, ib, n) covers result
// elements o..o+n-1, reading a from ia with stride p.sa[nd-1] and b from ib with stride
// p.sb[nd-1]. Runs are visited in increasing o.
func (p *bcast) rows(fn func(o, ia, ib, n int)) {
	nd := p.nd
	inner := p.shape[nd-1]
	total := shapeLen(p.shape[:nd])
	if inner == 0 || total == 0 {
		return
	}
	var idx [maxDims]int
	ia, ib := 0, 0
	for o := 0; o < total; o += inner {
		fn(o, ia, ib, inner)
		for d := nd - 2; d >= 0; d-- {
			idx[d]++
			ia += p.sa[d]
			ib += p.sb[d]
			if idx[d] < p.shape[d] {
				break
			}
			ia -= p.sa[d] * p.shape[d]
			ib -= p.sb[d] * p.shape[d]
			idx[d] = 0
		}
	}
}
