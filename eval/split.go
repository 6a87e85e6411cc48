package eval

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/visrec/visrec/datasets"
)

// Split kinds, the values of Split.Kind and of "kind" in split.json.
const (
	KindRandom       = "random"
	KindTemporal     = "temporal"
	KindLeaveLastOut = "leave-last-out"
	KindColdItem     = "cold-item"
)

// ErrFraction is returned (wrapped) by the split functions for a fraction outside (0, 1).
var ErrFraction = errors.New("eval: fraction must be in (0, 1)")

// Split is a train/test partition of a data set's interactions, in that data set's dense
// indices. Every interaction of the data set is in exactly one of Train and Test, and
// each keeps the data set's (time) order.
//
// A Split owns its slices: the split functions copy the interactions and never modify
// the data set. A Split is a plain value; it is safe for concurrent reads.
type Split struct {
	Kind     string  // one of the Kind constants
	Seed     uint64  // the seed of the random splits; 0 for temporal and leave-last-out
	Fraction float64 // the requested test (or cold item) fraction; 0 for leave-last-out
	Train    []datasets.Interaction
	Test     []datasets.Interaction
	// ColdItems are the held-out items of a cold-item split, ascending; nil otherwise.
	ColdItems []int32
}

// RandomSplit puts a uniformly random subset of exactly round(testFraction·n) of the
// data set's n interactions into Test (clamped to [1, n−1] when n ≥ 2) and the rest into
// Train. The subset is drawn by a partial Fisher–Yates shuffle of the interaction
// positions driven by PCG-DXSM seeded with seed, so it is the same for the same data set,
// fraction and seed on every platform and Go release. A user or item may end up in Test
// only; the same (user, item) pair may be in both (at different interactions).
func RandomSplit(ds *datasets.Dataset, testFraction float64, seed uint64) (*Split, error) {
	n := len(ds.Interactions)
	nTest, err := countOf(testFraction, n)
	if err != nil {
		return nil, fmt.Errorf("random split: %w", err)
	}
	test := make([]bool, n)
	for _, i := range sample(seed, n, nTest) {
		test[i] = true
	}
	sp := &Split{Kind: KindRandom, Seed: seed, Fraction: testFraction}
	sp.Train, sp.Test = partition(ds.Interactions, func(i int) bool { return test[i] }, n-nTest, nTest)
	return sp, nil
}

// TemporalSplit is the global temporal split: the interactions are ordered by TS, ties in
// the data set's order (which for a datasets.Builder data set is file order), and the last
// round(testFraction·n) of them (clamped to [1, n−1] when n ≥ 2) are Test. Every Train TS
// is ≤ every Test TS. Users and items that first appear late are in Test only.
func TemporalSplit(ds *datasets.Dataset, testFraction float64) (*Split, error) {
	n := len(ds.Interactions)
	nTest, err := countOf(testFraction, n)
	if err != nil {
		return nil, fmt.Errorf("temporal split: %w", err)
	}
	order := timeOrder(ds.Interactions)
	test := make([]bool, n)
	for _, i := range order[n-nTest:] {
		test[i] = true
	}
	sp := &Split{Kind: KindTemporal, Fraction: testFraction}
	sp.Train, sp.Test = partition(ds.Interactions, func(i int) bool { return test[i] }, n-nTest, nTest)
	return sp, nil
}

// LeaveLastOut puts each user's last interaction (greatest TS, ties broken by the data
// set's order: the later one is last) into Test, and everything else into Train. A user
// with a single interaction keeps it in Train and has no test item. Test is in the data
// set's order, as is Train.
func LeaveLastOut(ds *datasets.Dataset) *Split {
	n := len(ds.Interactions)
	nUsers := 0
	for _, x := range ds.Interactions {
		nUsers = max(nUsers, int(x.User)+1)
	}
	last := make([]int, nUsers) // user → position of the last interaction
	count := make([]int, nUsers)
	for _, i := range timeOrder(ds.Interactions) {
		u := ds.Interactions[i].User
		last[u] = i
		count[u]++
	}
	test := make([]bool, n)
	nTest := 0
	for u, i := range last {
		if count[u] > 1 {
			test[i] = true
			nTest++
		}
	}
	sp := &Split{Kind: KindLeaveLastOut}
	sp.Train, sp.Test = partition(ds.Interactions, func(i int) bool { return test[i] }, n-nTest, nTest)
	return sp
}

// ColdStartItemSplit holds out round(itemFraction·m) of the m distinct items that have
// at least one interaction (clamped to [1, m−1] when m ≥ 2), drawn uniformly by a partial
// Fisher–Yates shuffle of those items in ascending index order driven by PCG-DXSM seeded
// with seed. Test is every interaction of a held-out item, Train every other one, so no
// held-out item appears in Train at all. ColdItems lists the held-out items ascending.
// Evaluate the cold-start case with EvalOptions.Candidates = ColdItems.
func ColdStartItemSplit(ds *datasets.Dataset, itemFraction float64, seed uint64) (*Split, error) {
	seen := make(map[int32]bool)
	var items []int32
	for _, x := range ds.Interactions {
		if !seen[x.Item] {
			seen[x.Item] = true
			items = append(items, x.Item)
		}
	}
	slices.Sort(items)
	k, err := countOf(itemFraction, len(items))
	if err != nil {
		return nil, fmt.Errorf("cold-start item split: %w", err)
	}
	cold := make([]int32, 0, k)
	for _, i := range sample(seed, len(items), k) {
		cold = append(cold, items[i])
	}
	slices.Sort(cold)
	isCold := make(map[int32]bool, k)
	for _, it := range cold {
		isCold[it] = true
	}
	nTest := 0
	for _, x := range ds.Interactions {
		if isCold[x.Item] {
			nTest++
		}
	}
	sp := &Split{Kind: KindColdItem, Seed: seed, Fraction: itemFraction, ColdItems: cold}
	sp.Train, sp.Test = partition(ds.Interactions, func(i int) bool { return isCold[ds.Interactions[i].Item] },
		len(ds.Interactions)-nTest, nTest)
	return sp, nil
}

// countOf returns round(f·n) clamped to [1, n−1] when n ≥ 2 (to [0, n] otherwise).
func countOf(f float64, n int) (int, error) {
	if !(f > 0 && f < 1) { // also rejects NaN
		return 0, fmt.Errorf("%w, got %v", ErrFraction, f)
	}
	k := int(math.Round(f * float64(n)))
	if n >= 2 {
		k = min(max(k, 1), n-1)
	}
	return min(k, n), nil
}

// partition copies xs into train and test (each in xs order) by isTest(position).
func partition(xs []datasets.Interaction, isTest func(int) bool, nTrain, nTest int) (train, test []datasets.Interaction) {
	train = make([]datasets.Interaction, 0, nTrain)
	test = make([]datasets.Interaction, 0, nTest)
	for i, x := range xs {
		if isTest(i) {
			test = append(test, x)
		} else {
			train = append(train, x)
		}
	}
	return train, test
}

// timeOrder returns the positions of xs ordered by TS, ties by position.
func timeOrder(xs []datasets.Interaction) []int {
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(xs[a].TS, xs[b].TS) })
	return order
}

// splitStream is the PCG stream (second seed word) of the splits: "visrec".
const splitStream = 0x766973726563

// sample returns k distinct positions in [0, n) drawn by the first k steps of a
// Fisher–Yates shuffle seeded with seed. Bounded draws use Lemire's method on PCG-DXSM
// output, both fixed algorithms, so the result does not depend on the Go release.
func sample(seed uint64, n, k int) []int {
	src := rand.NewPCG(seed, splitStream)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for i := range k {
		j := i + int(uniformN(src, uint64(n-i)))
		perm[i], perm[j] = perm[j], perm[i]
	}
	return perm[:k]
}

// uniformN returns a uniform integer in [0, n), n > 0 (Lemire's nearly divisionless method).
func uniformN(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}
