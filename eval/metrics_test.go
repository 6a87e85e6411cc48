package eval_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
)

// fixedScores scores user u with rows[u]; it copies into dst as a Scorer must.
type fixedScores [][]float32

func (f fixedScores) ScoreAll(user int32, dst []float32) []float32 {
	return append(dst[:0], f[user]...)
}

func ia(user, item int32) datasets.Interaction {
	return datasets.Interaction{User: user, Item: item, Value: 1}
}

const tol = 1e-12

func near(a, b float64) bool { return math.Abs(a-b) <= tol }

func checkAtK(t *testing.T, r eval.Report, want eval.AtK) {
	t.Helper()
	got, ok := r.At(want.K)
	if !ok {
		t.Fatalf("no figures at K=%d", want.K)
	}
	if !near(got.Recall, want.Recall) || !near(got.Precision, want.Precision) || !near(got.NDCG, want.NDCG) ||
		!near(got.HR, want.HR) || !near(got.MRR, want.MRR) {
		t.Errorf("@%d = %+v, want %+v", want.K, got, want)
	}
}

var (
	log2of3 = math.Log2(3)
	log2of5 = math.Log2(5)
	log2of6 = math.Log2(6)
)

func TestEvaluateHandComputed(t *testing.T) {
	tests := []struct {
		name      string
		nItems    int
		scores    []float32
		train     []int32
		test      []int32
		wantAUC   float64
		wantAtK   []eval.AtK
		wantUsers int
	}{
		{
			// Candidates: item 0 is a training item, so {1,2,3,4,5}. By score: 2 (.9), 4 (.7),
			// 1 (.5), 5 (.3), 3 (.1): positive 1 at rank 3, positive 3 at rank 5.
			// IDCG with two positives = 1/log2(2) + 1/log2(3) = 1 + 1/log2(3).
			// AUC: negatives {2,4,5}; positive 1 beats 5 (1 pair), positive 3 beats none:
			// 1 of 2·3 pairs = 1/6.
			name:   "distinct scores",
			nItems: 6, scores: []float32{9, 0.5, 0.9, 0.1, 0.7, 0.3},
			train: []int32{0}, test: []int32{1, 3},
			wantAUC: 1.0 / 6,
			wantAtK: []eval.AtK{
				{K: 1}, // top 1 is item 2, a negative
				// top 3 = {2,4,1}: one hit at rank 3; DCG = 1/log2(4) = 1/2.
				{K: 3, Recall: 1.0 / 2, Precision: 1.0 / 3, NDCG: 0.5 / (1 + 1/log2of3), HR: 1, MRR: 1.0 / 3},
				// top 5 = all: hits at 3 and 5; DCG = 1/2 + 1/log2(6).
				{K: 5, Recall: 1, Precision: 2.0 / 5, NDCG: (0.5 + 1/log2of6) / (1 + 1/log2of3), HR: 1, MRR: 1.0 / 3},
			},
			wantUsers: 1,
		},
		{
			// Ties, pessimistic: order is 2 (.9); then the tie at .5 with negative 0 first and
			// positives 1, 3 after it by index; then 4 (.1). Positive ranks: 3 and 4.
			// AUC: negatives {0 (.5), 2 (.9), 4 (.1)}; each positive: ½ (tie with 0) + 0 + 1
			// = 1.5; (1.5+1.5)/(2·3) = 1/2.
			name:   "ties",
			nItems: 5, scores: []float32{0.5, 0.5, 0.9, 0.5, 0.1},
			test:    []int32{1, 3},
			wantAUC: 0.5,
			wantAtK: []eval.AtK{
				{K: 2},
				{K: 3, Recall: 1.0 / 2, Precision: 1.0 / 3, NDCG: 0.5 / (1 + 1/log2of3), HR: 1, MRR: 1.0 / 3},
				// DCG = 1/log2(4) + 1/log2(5).
				{K: 4, Recall: 1, Precision: 2.0 / 4, NDCG: (0.5 + 1/log2of5) / (1 + 1/log2of3), HR: 1, MRR: 1.0 / 3},
			},
			wantUsers: 1,
		},
		{
			// All scores equal: the positive comes after the 3 negatives, rank 4.
			// AUC: 3 ties = 3·½ / 3 = 1/2.
			name:   "constant scorer",
			nItems: 4, scores: []float32{1, 1, 1, 1},
			test:    []int32{0},
			wantAUC: 0.5,
			wantAtK: []eval.AtK{
				{K: 3},
				{K: 4, Recall: 1, Precision: 1.0 / 4, NDCG: 1 / log2of5, HR: 1, MRR: 1.0 / 4},
			},
			wantUsers: 1,
		},
		{
			// K beyond the candidates: 3 candidates (item 3 is in train), positive 1 at rank 2
			// (behind 0). Recall@10 = 1; Precision@10 = 1/10 (denominator K);
			// NDCG = (1/log2 3)/1; MRR = 1/2. AUC: beats 2, loses to 0: 1/2.
			name:   "K larger than candidates",
			nItems: 4, scores: []float32{3, 2, 1, 4},
			train: []int32{3}, test: []int32{1},
			wantAUC: 0.5,
			wantAtK: []eval.AtK{
				{K: 10, Recall: 1, Precision: 1.0 / 10, NDCG: 1 / log2of3, HR: 1, MRR: 1.0 / 2},
			},
			wantUsers: 1,
		},
		{
			// Duplicate test interactions count once: the same as one test item 1 ranked 2nd
			// among candidates {0,1,2} by score 0 (.9), 1 (.5), 2 (.1). AUC = 1/2.
			name:   "duplicate test interactions",
			nItems: 3, scores: []float32{0.9, 0.5, 0.1},
			test:    []int32{1, 1, 1},
			wantAUC: 0.5,
			wantAtK: []eval.AtK{
				{K: 1},
				{K: 2, Recall: 1, Precision: 1.0 / 2, NDCG: 1 / log2of3, HR: 1, MRR: 1.0 / 2},
			},
			wantUsers: 1,
		},
		{
			// Test item 1 is also a training item: it stays a positive; only item 0 (train,
			// not test) is excluded. Candidates {1,2}: 2 (.8) then 1 (.2): rank 2.
			// AUC: 0 of 1 pair.
			name:   "test item also in train",
			nItems: 3, scores: []float32{1, 0.2, 0.8},
			train: []int32{0, 1}, test: []int32{1},
			wantAUC: 0,
			wantAtK: []eval.AtK{
				{K: 1},
				{K: 2, Recall: 1, Precision: 1.0 / 2, NDCG: 1 / log2of3, HR: 1, MRR: 1.0 / 2},
			},
			wantUsers: 1,
		},
		{
			// Every item is a training item and the test item is one of them: the only
			// candidate is the positive, so everything is 1 and AUC is undefined (no
			// negative): the mean AUC is over 0 users and reads 0.
			name:   "all items in train",
			nItems: 3, scores: []float32{0.1, 0.2, 0.3},
			train: []int32{0, 1, 2}, test: []int32{0},
			wantAUC: 0,
			wantAtK: []eval.AtK{
				{K: 1, Recall: 1, Precision: 1, NDCG: 1, HR: 1, MRR: 1},
				{K: 5, Recall: 1, Precision: 1.0 / 5, NDCG: 1, HR: 1, MRR: 1},
			},
			wantUsers: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var train, test []datasets.Interaction
			for _, it := range tc.train {
				train = append(train, ia(0, it))
			}
			for _, it := range tc.test {
				test = append(test, ia(0, it))
			}
			var ks []int
			for _, a := range tc.wantAtK {
				ks = append(ks, a.K)
			}
			r := eval.Evaluate(fixedScores{tc.scores}, tc.nItems, train, test, ks, eval.DefaultEvalOptions())
			if r.Users != tc.wantUsers {
				t.Fatalf("Users = %d, want %d", r.Users, tc.wantUsers)
			}
			if !near(r.AUC, tc.wantAUC) {
				t.Errorf("AUC = %v, want %v", r.AUC, tc.wantAUC)
			}
			for _, want := range tc.wantAtK {
				checkAtK(t, r, want)
			}
		})
	}
}

func TestEvaluateAveragesAndSkips(t *testing.T) {
	// User 0: positive at rank 1 of 3 (Recall@1 = 1, AUC = 1).
	// User 1: positive at rank 3 of 3 (Recall@1 = 0, AUC = 0).
	// User 2: training only: skipped, counted in SkippedNoTest.
	// User 3: its only test item (7) is outside [0, nItems): skipped, counted in
	// SkippedNoCandidates and DroppedTest.
	// Means over users 0 and 1: Recall@1 = 1/2, MRR@3 = (1 + 1/3)/2 = 2/3, AUC = 1/2.
	scores := fixedScores{{0.9, 0.5, 0.1}, {0.9, 0.5, 0.1}, {0, 0, 0}, {0, 0, 0}}
	train := []datasets.Interaction{ia(2, 1)}
	test := []datasets.Interaction{ia(0, 0), ia(1, 2), ia(3, 7)}
	r := eval.Evaluate(scores, 3, train, test, []int{1, 3}, eval.DefaultEvalOptions())
	if r.Users != 2 || r.SkippedNoTest != 1 || r.SkippedNoCandidates != 1 || r.DroppedTest != 1 || r.AUCUsers != 2 {
		t.Fatalf("counts = %+v", r)
	}
	if !near(r.AUC, 0.5) {
		t.Errorf("AUC = %v, want 1/2", r.AUC)
	}
	checkAtK(t, r, eval.AtK{K: 1, Recall: 0.5, Precision: 0.5, NDCG: 0.5, HR: 0.5, MRR: 0.5})
	// @3: both hit; NDCG user 0 = 1, user 1 = 1/log2(4) = 1/2: mean 3/4.
	checkAtK(t, r, eval.AtK{K: 3, Recall: 1, Precision: 1.0 / 3, NDCG: 0.75, HR: 1, MRR: 2.0 / 3})
}

func TestEvaluateCandidates(t *testing.T) {
	// Candidates {1, 2, 2 (dup), 9 (out of range)} → {1, 2}. Test items 1 and 3: 3 is not a
	// candidate and is dropped. Item 0 scores highest but is no candidate: item 1 (.5) is
	// behind item 2 (.7), rank 2. Recall@1 = 0, Recall@2 = 1, AUC = 0.
	scores := fixedScores{{1, 0.5, 0.7, 0.9}}
	test := []datasets.Interaction{ia(0, 1), ia(0, 3)}
	opts := eval.EvalOptions{Candidates: []int32{1, 2, 2, 9}}
	r := eval.Evaluate(scores, 4, nil, test, []int{1, 2}, opts)
	if r.Users != 1 || r.DroppedTest != 1 {
		t.Fatalf("counts = %+v", r)
	}
	checkAtK(t, r, eval.AtK{K: 1})
	checkAtK(t, r, eval.AtK{K: 2, Recall: 1, Precision: 0.5, NDCG: 1 / log2of3, HR: 1, MRR: 0.5})
	if r.AUC != 0 || r.AUCUsers != 1 {
		t.Errorf("AUC = %v over %d users, want 0 over 1", r.AUC, r.AUCUsers)
	}
}

func TestEvaluateNaNRanksLast(t *testing.T) {
	// A NaN score ranks as −Inf: positive 0 (NaN) comes after both negatives, rank 3.
	nan := float32(math.NaN())
	r := eval.Evaluate(fixedScores{{nan, 0, -1}}, 3, nil, []datasets.Interaction{ia(0, 0)}, []int{2, 3}, eval.EvalOptions{})
	checkAtK(t, r, eval.AtK{K: 2})
	checkAtK(t, r, eval.AtK{K: 3, Recall: 1, Precision: 1.0 / 3, NDCG: 0.5, HR: 1, MRR: 1.0 / 3})
	if r.AUC != 0 {
		t.Errorf("AUC = %v, want 0", r.AUC)
	}
}

func TestEvaluateBadK(t *testing.T) {
	r := eval.Evaluate(fixedScores{{1, 0}}, 2, nil, []datasets.Interaction{ia(0, 0)}, []int{0, -3, 1}, eval.EvalOptions{})
	if len(r.AtK) != 3 || r.AtK[0] != (eval.AtK{K: 0}) || r.AtK[1] != (eval.AtK{K: -3}) {
		t.Fatalf("AtK = %+v", r.AtK)
	}
	checkAtK(t, r, eval.AtK{K: 1, Recall: 1, Precision: 1, NDCG: 1, HR: 1, MRR: 1})
}

func TestEvaluateScorerContract(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on a short score slice")
		}
	}()
	eval.Evaluate(fixedScores{{1}}, 2, nil, []datasets.Interaction{ia(0, 0)}, []int{1}, eval.EvalOptions{})
}

// randomCase makes nUsers users with random train and test items (some test items also
// in train, some duplicated) over nItems items.
func randomCase(seed uint64, nUsers, nItems int) (train, test []datasets.Interaction) {
	r := rand.New(rand.NewPCG(seed, 1))
	for u := range int32(nUsers) {
		for range r.IntN(nItems / 4) {
			train = append(train, ia(u, r.Int32N(int32(nItems))))
		}
		for range r.IntN(6) {
			test = append(test, ia(u, r.Int32N(int32(nItems))))
		}
	}
	return train, test
}

// quantizedScores returns random scores on a few levels, so that there are many ties.
func quantizedScores(seed uint64, nUsers, nItems, levels int) fixedScores {
	r := rand.New(rand.NewPCG(seed, 2))
	s := make(fixedScores, nUsers)
	for u := range s {
		s[u] = make([]float32, nItems)
		for i := range s[u] {
			s[u][i] = float32(r.IntN(levels))
		}
	}
	return s
}

// reference computes the report by brute force: a full sort of the candidates by
// (score desc, negatives before positives, item asc) and AUC by comparing every pair.
func reference(s fixedScores, nItems int, train, test []datasets.Interaction, ks []int) eval.Report {
	trainOf, testOf := map[int32]map[int32]bool{}, map[int32]map[int32]bool{}
	for _, x := range train {
		if trainOf[x.User] == nil {
			trainOf[x.User] = map[int32]bool{}
		}
		trainOf[x.User][x.Item] = true
	}
	for _, x := range test {
		if testOf[x.User] == nil {
			testOf[x.User] = map[int32]bool{}
		}
		testOf[x.User][x.Item] = true
	}
	rep := eval.Report{AtK: make([]eval.AtK, len(ks))}
	for i, k := range ks {
		rep.AtK[i].K = k
	}
	for u := range int32(len(s)) {
		if len(testOf[u]) == 0 {
			if len(trainOf[u]) > 0 {
				rep.SkippedNoTest++
			}
			continue
		}
		var cands []int32
		for it := range int32(nItems) {
			if !trainOf[u][it] || testOf[u][it] {
				cands = append(cands, it)
			}
		}
		pos := func(it int32) bool { return testOf[u][it] }
		slices.SortFunc(cands, func(a, b int32) int {
			switch {
			case s[u][a] != s[u][b]:
				if s[u][a] > s[u][b] {
					return -1
				}
				return 1
			case pos(a) != pos(b):
				if pos(a) {
					return 1
				}
				return -1
			}
			return int(a - b)
		})
		nPos := len(testOf[u])
		rep.Users++
		var pairs, good float64
		for _, p := range cands {
			for _, q := range cands {
				if pos(p) && !pos(q) {
					pairs++
					if s[u][p] > s[u][q] {
						good++
					} else if s[u][p] == s[u][q] {
						good += 0.5
					}
				}
			}
		}
		if pairs > 0 {
			rep.AUCUsers++
			rep.AUC += good / pairs
		}
		for i, k := range ks {
			hits, dcg, idcg, mrr := 0, 0.0, 0.0, 0.0
			for r := 1; r <= min(k, len(cands)); r++ {
				if pos(cands[r-1]) {
					if hits == 0 {
						mrr = 1 / float64(r)
					}
					hits++
					dcg += 1 / math.Log2(float64(r)+1)
				}
			}
			for r := 1; r <= min(k, nPos); r++ {
				idcg += 1 / math.Log2(float64(r)+1)
			}
			a := &rep.AtK[i]
			a.Recall += float64(hits) / float64(nPos)
			a.Precision += float64(hits) / float64(k)
			a.NDCG += dcg / idcg
			if hits > 0 {
				a.HR++
			}
			a.MRR += mrr
		}
	}
	rep.AUC /= float64(rep.AUCUsers)
	for i := range rep.AtK {
		a := &rep.AtK[i]
		n := float64(rep.Users)
		a.Recall, a.Precision, a.NDCG, a.HR, a.MRR = a.Recall/n, a.Precision/n, a.NDCG/n, a.HR/n, a.MRR/n
	}
	return rep
}

func TestEvaluateMatchesBruteForce(t *testing.T) {
	ks := []int{1, 2, 5, 10, 50, 200}
	for _, levels := range []int{2, 5, 1 << 20} {
		for seed := range uint64(5) {
			const nUsers, nItems = 40, 60
			train, test := randomCase(seed, nUsers, nItems)
			s := quantizedScores(seed, nUsers, nItems, levels)
			got := eval.Evaluate(s, nItems, train, test, ks, eval.EvalOptions{Workers: 3})
			want := reference(s, nItems, train, test, ks)
			if got.Users != want.Users || got.SkippedNoTest != want.SkippedNoTest || got.AUCUsers != want.AUCUsers {
				t.Fatalf("levels %d seed %d: counts %+v, want %+v", levels, seed, got, want)
			}
			if math.Abs(got.AUC-want.AUC) > 1e-9 {
				t.Errorf("levels %d seed %d: AUC %v, want %v", levels, seed, got.AUC, want.AUC)
			}
			for i := range ks {
				g, w := got.AtK[i], want.AtK[i]
				if math.Abs(g.Recall-w.Recall) > 1e-9 || math.Abs(g.Precision-w.Precision) > 1e-9 ||
					math.Abs(g.NDCG-w.NDCG) > 1e-9 || math.Abs(g.HR-w.HR) > 1e-9 || math.Abs(g.MRR-w.MRR) > 1e-9 {
					t.Errorf("levels %d seed %d: %+v, want %+v", levels, seed, g, w)
				}
			}
		}
	}
}

func TestEvaluateInvariants(t *testing.T) {
	const nUsers, nItems = 60, 80
	train, test := randomCase(7, nUsers, nItems)
	ks := make([]int, 0, nItems+1)
	for k := 1; k <= nItems+1; k++ {
		ks = append(ks, k)
	}

	t.Run("monotone in K", func(t *testing.T) {
		r := eval.Evaluate(eval.NewRandomScorer(nItems, 3), nItems, train, test, ks, eval.EvalOptions{})
		for i := 1; i < len(r.AtK); i++ {
			a, b := r.AtK[i-1], r.AtK[i]
			if b.Recall < a.Recall || b.HR < a.HR || b.MRR < a.MRR {
				t.Fatalf("not monotone from %+v to %+v", a, b)
			}
		}
		if last := r.AtK[len(r.AtK)-1]; last.Recall != 1 || last.HR != 1 {
			t.Errorf("@%d (every candidate) = %+v, want Recall and HR 1", last.K, last)
		}
	})

	perfect := make(fixedScores, nUsers)
	reversed := make(fixedScores, nUsers)
	nPos := make([]int, nUsers)
	for u := range perfect {
		perfect[u] = make([]float32, nItems)
		reversed[u] = make([]float32, nItems)
		for i := range reversed[u] {
			reversed[u][i] = 1
		}
	}
	for _, x := range test {
		if perfect[x.User][x.Item] == 0 {
			nPos[x.User]++
		}
		perfect[x.User][x.Item], reversed[x.User][x.Item] = 1, 0
	}

	t.Run("perfect", func(t *testing.T) {
		r := eval.Evaluate(perfect, nItems, train, test, ks, eval.EvalOptions{})
		if r.AUC != 1 {
			t.Errorf("AUC = %v, want 1", r.AUC)
		}
		maxPos := slices.Max(nPos)
		for _, a := range r.AtK {
			if !near(a.NDCG, 1) || a.HR != 1 || a.MRR != 1 {
				t.Errorf("@%d = %+v, want NDCG, HR, MRR 1", a.K, a)
			}
			if a.K >= maxPos && a.Recall != 1 {
				t.Errorf("@%d Recall = %v, want 1", a.K, a.Recall)
			}
		}
	})
	t.Run("reversed", func(t *testing.T) {
		r := eval.Evaluate(reversed, nItems, train, test, ks, eval.EvalOptions{})
		if r.AUC != 0 {
			t.Errorf("AUC = %v, want 0", r.AUC)
		}
		if a := r.AtK[0]; a.Recall != 0 || a.HR != 0 {
			t.Errorf("@1 = %+v, want 0", a)
		}
	})
}

func TestEvaluateWorkersDeterministic(t *testing.T) {
	defer goleak.VerifyNone(t)
	const nUsers, nItems = 300, 500
	train, test := randomCase(11, nUsers, nItems)
	s := eval.NewRandomScorer(nItems, 5)
	ks := []int{5, 10, 20}
	base := eval.Evaluate(s, nItems, train, test, ks, eval.EvalOptions{Workers: 1})
	for _, w := range []int{0, 2, 7, 64, 1000} {
		if got := eval.Evaluate(s, nItems, train, test, ks, eval.EvalOptions{Workers: w}); !reflect.DeepEqual(got, base) {
			t.Fatalf("Workers %d: %+v, want %+v", w, got, base)
		}
	}
}

func TestEvaluateEmpty(t *testing.T) {
	r := eval.Evaluate(eval.NewRandomScorer(0, 1), 0, nil, nil, []int{10}, eval.EvalOptions{Workers: 4})
	if r.Users != 0 || len(r.AtK) != 1 || r.AtK[0] != (eval.AtK{K: 10}) {
		t.Fatalf("%+v", r)
	}
}

func TestBaselines(t *testing.T) {
	train := []datasets.Interaction{ia(0, 2), ia(1, 2), ia(1, 0), ia(2, 2), ia(0, 9)}
	pop := eval.NewPopularityScorer(4, train)
	// Items 0..3 seen 1, 0, 3, 0 times; item 9 is out of range and ignored.
	if got := pop.ScoreAll(5, make([]float32, 1, 8)); !slices.Equal(got, []float32{1, 0, 3, 0}) {
		t.Errorf("popularity = %v", got)
	}

	rs := eval.NewRandomScorer(1000, 42)
	a := rs.ScoreAll(3, nil)
	b := rs.ScoreAll(3, make([]float32, 2000))
	c := eval.NewRandomScorer(1000, 43).ScoreAll(3, nil)
	d := rs.ScoreAll(4, nil)
	if len(a) != 1000 || len(b) != 1000 || !slices.Equal(a, b) {
		t.Fatal("random scores differ between calls for one user and seed")
	}
	if slices.Equal(a, c) || slices.Equal(a, d) {
		t.Fatal("random scores do not depend on seed and user")
	}
	mean := 0.0
	for _, v := range a {
		if v < 0 || v >= 1 {
			t.Fatalf("score %v outside [0, 1)", v)
		}
		mean += float64(v)
	}
	// The mean of 1000 U(0,1) has standard deviation √(1/12/1000) ≈ 0.0091: 5σ ≈ 0.046.
	if mean /= 1000; math.Abs(mean-0.5) > 0.046 {
		t.Errorf("mean random score %v", mean)
	}
}
