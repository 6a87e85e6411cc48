package models

// Servable is a model whose score is one dot product of a user vector and an item vector,
// both derived from the stored rows:
//
//	Score(user, item, global) == dot(UserVector(user, global), ItemVector(item, global, features))
//
// up to float32 rounding. Serving keeps the item vectors of a model as one dense matrix and
// ranks every item for a user with one blocked matrix–vector product, so every model that the
// stream serves implements it. features is the item's image embedding; models that do not
// use one ignore it (it may be nil). Neither method allocates; dst has length ServeDim.
// Both read only their arguments and the model's fixed options, so any number of
// goroutines may call them at once (while no one calls Step on the same rows).
type Servable interface {
	Online
	ServeDim() int
	UserVector(dst, user, global []float32)
	ItemVector(dst, item, global, features []float32)
}

// ServeDim is K+1: [1, p_u] · [b_i, q_i].
func (m *BPR) ServeDim() int { return m.k + 1 }

// UserVector writes [1, p_u].
func (m *BPR) UserVector(dst, user, _ []float32) {
	dst[0] = 1
	copy(dst[1:], user[:m.k])
}

// ItemVector writes [b_i, q_i].
func (m *BPR) ItemVector(dst, item, _, _ []float32) { copy(dst, item[:m.k+1]) }

// ServeDim is K+2: [μ + b_u, 1, p_u] · [1, b_i, q_i].
func (m *MF) ServeDim() int { return m.k + 2 }

// UserVector writes [μ + b_u, 1, p_u] (μ = 0 when global is empty).
func (m *MF) UserVector(dst, user, global []float32) {
	dst[0] = user[0]
	if len(global) > 0 {
		dst[0] += global[0]
	}
	dst[1] = 1
	copy(dst[2:], user[1:m.k+1])
}

// ItemVector writes [1, b_i, q_i].
func (m *MF) ItemVector(dst, item, _, _ []float32) {
	dst[0] = 1
	copy(dst[1:], item[:m.k+1])
}
