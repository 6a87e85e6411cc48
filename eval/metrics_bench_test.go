package eval_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
)

// rowScorer hands out copies of a few precomputed random score rows, so that a benchmark
// measures Evaluate rather than a model.
type rowScorer [][]float32

func (r rowScorer) ScoreAll(user int32, dst []float32) []float32 {
	row := r[int(user)%len(r)]
	if cap(dst) < len(row) {
		dst = make([]float32, len(row))
	}
	dst = dst[:len(row)]
	copy(dst, row)
	return dst
}

// BenchmarkEvaluate ranks nItems items for 1,000 users with 100 training and 20 test
// items each, at K = 10 and 20. ns/user is the time per evaluated user.
func BenchmarkEvaluate(b *testing.B) {
	const nUsers, nTrain, nTest = 1000, 100, 20
	for _, nItems := range []int{10_000, 100_000} {
		r := rand.New(rand.NewPCG(1, 2))
		rows := make(rowScorer, 16)
		for i := range rows {
			rows[i] = make([]float32, nItems)
			for j := range rows[i] {
				rows[i][j] = r.Float32()
			}
		}
		var train, test []datasets.Interaction
		for u := range int32(nUsers) {
			for range nTrain {
				train = append(train, datasets.Interaction{User: u, Item: r.Int32N(int32(nItems)), Value: 1})
			}
			for range nTest {
				test = append(test, datasets.Interaction{User: u, Item: r.Int32N(int32(nItems)), Value: 1})
			}
		}
		for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("items=%d/users=%d/workers=%d", nItems, nUsers, workers), func(b *testing.B) {
				opts := eval.EvalOptions{Workers: workers}
				for b.Loop() {
					eval.Evaluate(rows, nItems, train, test, []int{10, 20}, opts)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/nUsers, "ns/user")
			})
		}
		b.Run(fmt.Sprintf("items=%d/score-copy-only", nItems), func(b *testing.B) {
			var dst []float32
			for b.Loop() {
				for u := range int32(nUsers) {
					dst = rows.ScoreAll(u, dst)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/nUsers, "ns/user")
		})
	}
}
