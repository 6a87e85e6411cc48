package producers

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
)

// Planted is the ground truth behind a synthetic stream. Matrices are row-major float32.
// It is read-only once the generator exists; share it freely between goroutines.
type Planted struct {
	Users, Items, Dim, VisualDim int

	UserFactors []float32 // Users × Dim
	ItemFactors []float32 // Items × Dim
	// ItemVisual is Items × VisualDim: ItemVisual[j] = VisualProjection·ItemFactors[j] /
	// σ + VisualNoise·ε, with σ the per-entry standard deviation of the projected factors,
	// so each entry has about unit signal variance and the features predict the factors.
	ItemVisual []float32
	// VisualProjection is VisualDim × Dim with N(0, 1/Dim) entries.
	VisualProjection []float32
	Popularity       []float64 // item base weights, summing to 1
	Activity         []float64 // user activity weights, summing to 1
	// ReleaseAt[j] is the number of events emitted before item j becomes available
	// (0 for the initial items). Items are released in id order.
	ReleaseAt []int64
	UserIDs   []string
	ItemIDs   []string
}

// User returns user u's factor row.
func (p *Planted) User(u int) []float32 { return p.UserFactors[u*p.Dim : (u+1)*p.Dim] }

// Item returns item j's factor row.
func (p *Planted) Item(j int) []float32 { return p.ItemFactors[j*p.Dim : (j+1)*p.Dim] }

// Visual returns item j's visual feature vector (nil when VisualDim is 0).
func (p *Planted) Visual(j int) []float32 {
	return p.ItemVisual[j*p.VisualDim : (j+1)*p.VisualDim]
}

// Affinity is the planted taste of user u for item j, u·v, about N(0, 1) distributed.
func (p *Planted) Affinity(u, j int) float32 { return dot(p.User(u), p.Item(j)) }

// UserIndex parses a synthetic user id ("u17" → 17).
func (p *Planted) UserIndex(id string) (int, bool) { return parseIndex(id, 'u', p.Users) }

// ItemIndex parses a synthetic item id ("i42" → 42).
func (p *Planted) ItemIndex(id string) (int, bool) { return parseIndex(id, 'i', p.Items) }

func parseIndex(id string, prefix byte, n int) (int, bool) {
	if len(id) < 2 || id[0] != prefix {
		return 0, false
	}
	i, err := strconv.Atoi(id[1:])
	if err != nil || i < 0 || i >= n {
		return 0, false
	}
	return i, true
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// newPlanted draws the ground truth for cfg from its own random stream, so that it depends
// on the seed and the sizes but not on the stream length.
func newPlanted(cfg *SyntheticConfig) *Planted {
	r := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	k := cfg.Dim
	p := &Planted{
		Users: cfg.Users, Items: cfg.Items, Dim: k, VisualDim: cfg.VisualDim,
		UserFactors: make([]float32, cfg.Users*k),
		ItemFactors: make([]float32, cfg.Items*k),
	}
	// Entries N(0, 1/sqrt(K)) make u·v about N(0, 1).
	sd := math.Pow(float64(k), -0.25)
	for i := range p.UserFactors {
		p.UserFactors[i] = float32(r.NormFloat64() * sd)
	}
	for i := range p.ItemFactors {
		p.ItemFactors[i] = float32(r.NormFloat64() * sd)
	}
	if f := cfg.VisualDim; f > 0 {
		p.VisualProjection = make([]float32, f*k)
		psd := 1 / math.Sqrt(float64(k))
		for i := range p.VisualProjection {
			p.VisualProjection[i] = float32(r.NormFloat64() * psd)
		}
		// Each entry of Proj·v has variance K · (1/K) · sd² = sd².
		inv := float32(1 / sd)
		p.ItemVisual = make([]float32, cfg.Items*f)
		for j := 0; j < cfg.Items; j++ {
			v := p.Item(j)
			out := p.ItemVisual[j*f : (j+1)*f]
			for d := range out {
				out[d] = dot(p.VisualProjection[d*k:(d+1)*k], v)*inv + float32(r.NormFloat64()*cfg.VisualNoise)
			}
		}
	}
	p.Popularity = powerLawWeights(r, cfg.Items, cfg.PopularityExponent)
	p.Activity = powerLawWeights(r, cfg.Users, cfg.ActivityExponent)
	p.UserIDs = ids('u', cfg.Users)
	p.ItemIDs = ids('i', cfg.Items)
	return p
}

// powerLawWeights gives n weights 1/(rank+1)^s, normalised to sum 1, with ranks assigned by
// a random permutation.
func powerLawWeights(r *rand.Rand, n int, s float64) []float64 {
	w := make([]float64, n)
	sum := 0.0
	for i, rank := range r.Perm(n) {
		w[i] = math.Pow(float64(rank+1), -s)
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

func ids(prefix byte, n int) []string {
	out := make([]string, n)
	buf := make([]byte, 0, 12)
	for i := range out {
		buf = strconv.AppendInt(append(buf[:0], prefix), int64(i), 10)
		out[i] = string(buf)
	}
	return out
}

// TopItems returns the n items of highest planted popularity, most popular first; handy
// for checking skew and for popularity baselines.
func (p *Planted) TopItems(n int) []int {
	idx := make([]int, p.Items)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case p.Popularity[a] > p.Popularity[b]:
			return -1
		case p.Popularity[a] < p.Popularity[b]:
			return 1
		}
		return a - b
	})
	return idx[:min(n, len(idx))]
}

// expTable approximates e^x for sampling weights by linear interpolation in a table of
// e^(k/32), k = -640..640: relative error below 1.3e-4, inputs clamped to [-20, 20] (NaN
// to -20). It is
// a few times faster than math.Exp, which otherwise dominates generation time.
type expTable struct{ v [1282]float64 }

const (
	expTableMin   = -20.0
	expTableSteps = 32.0 // entries per unit of x
)

func newExpTable() *expTable {
	t := &expTable{}
	for k := range t.v {
		t.v[k] = math.Exp(expTableMin + float64(k)/expTableSteps)
	}
	return t
}

func (t *expTable) exp(x float64) float64 {
	switch {
	case !(x > expTableMin): // NaN too
		x = expTableMin
	case x > -expTableMin:
		x = -expTableMin
	}
	y := (x - expTableMin) * expTableSteps
	k := int(y)
	f := y - float64(k)
	a := t.v[k]
	return a + float64(f*(t.v[k+1]-a))
}
