package producers

import "math/rand/v2"

// aliasTable samples an index with probability proportional to a weight in O(1) (Vose's
// alias method): one 64-bit random number per draw.
type aliasTable struct {
	prob  []uint32 // acceptance threshold of column i, scaled to 2^32
	alias []int32
}

// newAliasTable builds a table for weights, which must be non-negative with a positive sum.
func newAliasTable(weights []float64) aliasTable {
	n := len(weights)
	t := aliasTable{prob: make([]uint32, n), alias: make([]int32, n)}
	sum := 0.0
	for _, w := range weights {
		sum += w
	}
	scaled := make([]float64, n)
	small := make([]int32, 0, n)
	large := make([]int32, 0, n)
	for i, w := range weights {
		scaled[i] = w * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		t.prob[s] = uint32(scaled[s] * (1 << 32))
		t.alias[s] = l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		t.prob[i] = 1<<32 - 1
		t.alias[i] = i
	}
	return t
}

// draw returns an index; the high 32 bits of one random number pick the column and the low
// 32 bits decide between the column and its alias.
func (t *aliasTable) draw(r *rand.PCG) int {
	x := r.Uint64()
	col := int((x >> 32) * uint64(len(t.prob)) >> 32)
	if uint32(x) < t.prob[col] {
		return col
	}
	return int(t.alias[col])
}
