package ranking

// blockRows is the number of rows in one block of a matrix: the unit of copy-on-write and of
// the work handed to one ranking goroutine. 1024 rows of 65 floats are 266 KB, so a block's
// rows and the user vector stay in L2 while it is scored.
const blockRows = 1024

// block is blockRows rows of a matrix. A published block is never written again: a change
// copies it (copy-on-write), so readers of older snapshots keep a consistent view.
type block struct {
	data  []float32 // blockRows*dim
	norms []float32 // Euclidean norm of each row (cosine similarity)
	has   []bool    // whether the row was ever set (embeddings: whether the item has one)
}

// matrix is an immutable dense float32 matrix of n rows of dim floats, in blocks. Row i is
// block i/blockRows, row i%blockRows. A block is row-major (element k of row r at
// data[r*dim+k]) or, when colMajor, column-major in panels (at data[colIndex(dim, r, k)]): the item
// matrices are column-major, because their kernel (matvecTAVX) then scores 64 rows per pass
// with one FMA per element and no horizontal sums; the embeddings stay row-major, since
// ItemVector needs an item's embedding as one slice.
type matrix struct {
	dim      int
	n        int
	colMajor bool
	blocks   []*block
}

func newBlock(dim int) *block {
	return &block{data: make([]float32, blockRows*dim), norms: make([]float32, blockRows), has: make([]bool, blockRows)}
}

func (b *block) clone() *block {
	return &block{
		data:  append([]float32(nil), b.data...),
		norms: append([]float32(nil), b.norms...),
		has:   append([]bool(nil), b.has...),
	}
}

// row returns row i (i < n): of a row-major matrix the stored slice itself (it must not be
// modified), of a column-major one a copy in dst (len dim).
func (m *matrix) row(dst []float32, i int) []float32 {
	b := m.blocks[i/blockRows]
	r := i % blockRows
	if !m.colMajor {
		return b.data[r*m.dim : (r+1)*m.dim : (r+1)*m.dim]
	}
	dst = dst[:m.dim]
	for k := range dst {
		dst[k] = b.data[colIndex(m.dim, r, k)]
	}
	return dst
}

func (m *matrix) rowNorm(i int) float32 { return m.blocks[i/blockRows].norms[i%blockRows] }

func (m *matrix) has(i int) bool { return m.blocks[i/blockRows].has[i%blockRows] }

// builder derives a new matrix from a published one: the first write to a block copies it,
// later writes to the same block go to the copy. Nothing reachable from the base changes.
type builder struct {
	m      matrix
	copied map[int]bool
}

func newBuilder(base *matrix) *builder {
	b := &builder{m: matrix{dim: base.dim, n: base.n, colMajor: base.colMajor}, copied: make(map[int]bool)}
	b.m.blocks = append([]*block(nil), base.blocks...)
	return b
}

// grow extends the matrix to n rows; new rows are zero and unset.
func (b *builder) grow(n int) {
	for len(b.m.blocks)*blockRows < n {
		b.copied[len(b.m.blocks)] = true
		b.m.blocks = append(b.m.blocks, newBlock(b.m.dim))
	}
	if n > b.m.n {
		b.m.n = n
	}
}

// set writes row i (i < n): v, its norm and the has flag.
func (b *builder) set(i int, v []float32) {
	bi, r := i/blockRows, i%blockRows
	blk := b.m.blocks[bi]
	if !b.copied[bi] {
		blk = blk.clone()
		b.m.blocks[bi] = blk
		b.copied[bi] = true
	}
	dim := b.m.dim
	if b.m.colMajor {
		PutRow(blk.data, r, v[:dim])
	} else {
		copy(blk.data[r*dim:(r+1)*dim], v)
	}
	blk.norms[r] = norm(v)
	blk.has[r] = true
}

// done returns the new matrix; the builder must not be used after.
func (b *builder) done() *matrix {
	m := b.m
	return &m
}
