package nn

import (
	"fmt"
	"math"
	"strconv"
)

// maxInlineDims is the number of dimensions a Tensor stores without a separate allocation
// for its shape.
const maxInlineDims = 4

// Tensor is a dense float32 array in row-major (C) order: the last dimension varies
// fastest and Data holds exactly Len() elements. There are no strides; views that would need
// them (transposes, permutations) are materialised by the ops that produce them.
//
// Ownership: a Tensor made by New or FromData belongs to its maker. A Tensor held by a Node
// (Value or Grad) belongs to the Tape that recorded the node unless the node is a parameter
// leaf; it stays valid until the Tape's next Reset, after which its memory is reused.
// Callers must not change the Shape of a tensor they do not own. A Tensor is not safe for
// concurrent mutation.
type Tensor struct {
	// Shape lists the dimensions, outermost first. A scalar has shape [1].
	Shape []int
	// Data holds the elements in row-major order; len(Data) == product of Shape.
	Data []float32

	dims [maxInlineDims]int // backing store for Shape when it has few dimensions
}

// New returns a zero tensor of the given shape. It panics if a dimension is negative or
// no dimension is given.
func New(shape ...int) *Tensor {
	t := &Tensor{}
	t.setShape(shape)
	t.Data = make([]float32, t.Len())
	return t
}

// FromData returns a tensor of the given shape that uses data as its storage (no copy).
// It panics if len(data) differs from the product of shape.
func FromData(data []float32, shape ...int) *Tensor {
	t := &Tensor{}
	t.setShape(shape)
	if len(data) != t.Len() {
		panic(fmt.Sprintf("nn: FromData: %d elements for shape %s", len(data), shapeString(shape)))
	}
	t.Data = data
	return t
}

// Scalar returns a tensor of shape [1] holding v.
func Scalar(v float32) *Tensor { return FromData([]float32{v}, 1) }

// setShape copies shape into t.Shape, using the inline array when it fits.
func (t *Tensor) setShape(shape []int) {
	if len(shape) == 0 {
		panic("nn: tensor with no dimensions")
	}
	for _, d := range shape {
		if d < 0 {
			panic("nn: negative dimension in shape " + shapeString(shape))
		}
	}
	if len(shape) <= maxInlineDims {
		t.Shape = t.dims[:len(shape)]
	} else {
		t.Shape = make([]int, len(shape))
	}
	copy(t.Shape, shape)
}

// Len returns the number of elements.
func (t *Tensor) Len() int { return shapeLen(t.Shape) }

// Dims returns the number of dimensions.
func (t *Tensor) Dims() int { return len(t.Shape) }

// Rows returns the product of all dimensions but the last: the number of rows when the
// tensor is seen as a matrix whose rows are its last axis.
func (t *Tensor) Rows() int { return shapeLen(t.Shape[:len(t.Shape)-1]) }

// Cols returns the size of the last dimension.
func (t *Tensor) Cols() int { return t.Shape[len(t.Shape)-1] }

// At returns the element at the given multi-index. It is meant for tests and debugging.
func (t *Tensor) At(idx ...int) float32 { return t.Data[t.offset(idx)] }

// Set stores v at the given multi-index.
func (t *Tensor) Set(v float32, idx ...int) { t.Data[t.offset(idx)] = v }

func (t *Tensor) offset(idx []int) int {
	if len(idx) != len(t.Shape) {
		panic(fmt.Sprintf("nn: index %v for shape %v", idx, t.Shape))
	}
	off := 0
	for i, x := range idx {
		if x < 0 || x >= t.Shape[i] {
			panic(fmt.Sprintf("nn: index %v out of range for shape %v", idx, t.Shape))
		}
		off = off*t.Shape[i] + x
	}
	return off
}

// Clone returns a deep copy that owns its storage.
func (t *Tensor) Clone() *Tensor {
	c := New(t.Shape...)
	copy(c.Data, t.Data)
	return c
}

// CopyFrom copies src's elements into t. The shapes must match.
func (t *Tensor) CopyFrom(src *Tensor) {
	mustSameShape("CopyFrom", t, src)
	copy(t.Data, src.Data)
}

// Zero sets every element to 0.
func (t *Tensor) Zero() { clear(t.Data) }

// Fill sets every element to v.
func (t *Tensor) Fill(v float32) {
	for i := range t.Data {
		t.Data[i] = v
	}
}

// SameShape reports whether t and u have identical shapes.
func (t *Tensor) SameShape(u *Tensor) bool { return sameShape(t.Shape, u.Shape) }

// AllFinite reports whether no element is NaN or ±Inf.
func (t *Tensor) AllFinite() bool {
	for _, v := range t.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

// String formats the shape and, for small tensors, the data.
func (t *Tensor) String() string {
	if t.Len() <= 16 {
		return fmt.Sprintf("Tensor%v%v", t.Shape, t.Data)
	}
	return fmt.Sprintf("Tensor%v[%v %v ... %v]", t.Shape, t.Data[0], t.Data[1], t.Data[len(t.Data)-1])
}

// shapeString formats a shape without letting the slice escape (panic messages on hot
// paths would otherwise move callers' shape arrays to the heap).
func shapeString(shape []int) string {
	b := []byte{'['}
	for i, d := range shape {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(d), 10)
	}
	return string(append(b, ']'))
}

func shapeLen(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustSameShape(op string, a, b *Tensor) {
	if !sameShape(a.Shape, b.Shape) {
		panic(fmt.Sprintf("nn: %s: shapes %v and %v differ", op, a.Shape, b.Shape))
	}
}
