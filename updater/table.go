package updater

// table is an in-memory cache of parameter rows of one width, stored contiguously.
//
// A shared table (items, globals) also keeps base, each row as it was last read from or
// merged into the store; a flush moves the stored row from base to data (MergeVector). A
// single-writer table (users) keeps a dirty flag per row instead and a flush sends the
// whole row.
type table struct {
	name   string // feature store table name
	width  int
	shared bool
	index  map[string]int32
	ids    []string
	data   []float32
	base   []float32 // shared tables only
	dirty  []bool    // single-writer tables only
	nDirty int
}

func newTable(name string, width int, shared bool) *table {
	return &table{name: name, width: width, shared: shared, index: make(map[string]int32)}
}

// row returns the row of id, or nil when it is not cached.
func (t *table) row(id string) []float32 {
	i, ok := t.index[id]
	if !ok {
		return nil
	}
	return t.at(i)
}

func (t *table) at(i int32) []float32 {
	off := int(i) * t.width
	return t.data[off : off+t.width : off+t.width]
}

// add caches a row for id (zeros when v is nil) and returns its index. The row counts as
// stored: a shared row's base is v, a single-writer row is clean.
func (t *table) add(id string, v []float32) int32 {
	i := int32(len(t.ids))
	t.index[id] = i
	t.ids = append(t.ids, id)
	n := len(t.data)
	t.data = append(t.data, make([]float32, t.width)...)
	if v != nil {
		copy(t.data[n:], v)
	}
	if t.shared {
		t.base = append(t.base, t.data[n:n+t.width]...)
	} else {
		t.dirty = append(t.dirty, false)
	}
	return i
}

func (t *table) markDirty(i int32) {
	if !t.dirty[i] {
		t.dirty[i] = true
		t.nDirty++
	}
}

// changed tells whether row i differs from its base.
func (t *table) changed(i int32) bool {
	off := int(i) * t.width
	for k := off; k < off+t.width; k++ {
		if t.data[k] != t.base[k] {
			return true
		}
	}
	return false
}

// baseAt returns the base of row i.
func (t *table) baseAt(i int32) []float32 {
	off := int(i) * t.width
	return t.base[off : off+t.width : off+t.width]
}

// rebase sets row i (data and base) to v.
func (t *table) rebase(i int32, v []float32) {
	off := int(i) * t.width
	copy(t.data[off:off+t.width], v)
	copy(t.base[off:off+t.width], v)
}

// merge takes in v, the value the store holds for row i after a merge: what differs from
// base is other writers' deltas, which are added to data too.
func (t *table) merge(i int32, v []float32) {
	off := int(i) * t.width
	for k, x := range v {
		if o := x - t.base[off+k]; o != 0 {
			t.data[off+k] += o
			t.base[off+k] = x
		}
	}
}

// clean marks every single-writer row as stored.
func (t *table) clean() {
	for i := range t.dirty {
		t.dirty[i] = false
	}
	t.nDirty = 0
}

// dropClean drops the clean rows of a single-writer table (they are in the store), keeping
// the dirty ones.
func (t *table) dropClean() {
	var ids []string
	var data []float32
	for i, id := range t.ids {
		if t.dirty[i] {
			ids = append(ids, id)
			data = append(data, t.at(int32(i))...)
		}
	}
	t.reset()
	for k, id := range ids {
		t.markDirty(t.add(id, data[k*t.width:(k+1)*t.width]))
	}
}

// reset drops every row.
func (t *table) reset() {
	clear(t.index)
	t.ids, t.data, t.base, t.dirty, t.nDirty = t.ids[:0], t.data[:0], t.base[:0], t.dirty[:0], 0
}
