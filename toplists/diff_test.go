package toplists

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestDiff: applying diff's ZREM and ZADD to the stored list gives the new list, member for
// member and score for score, for random pairs of lists (shared, rescored, new and leaving
// members), and an item entering a list costs one member each way.
func TestDiff(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	list := func(n int) []entry {
		out := make([]entry, 0, n)
		for len(out) < n {
			p := int32(rng.IntN(100))
			if inList(out, p) {
				continue
			}
			out = append(out, entry{item: "i" + strconv.Itoa(int(p)), pos: p, score: float32(rng.IntN(4))})
		}
		return out
	}
	apply := func(set map[string]float64, add []redis.Z, rem []any) {
		for _, r := range rem {
			delete(set, r.(string))
		}
		for _, z := range add {
			set[z.Member.(string)] = z.Score
		}
	}
	for range 2000 {
		old, next := list(rng.IntN(45)), list(rng.IntN(45)) // both sides of diff's scan/map switch at 32
		if rng.IntN(2) == 0 && len(old) > 0 {               // mostly shared: rescore some of old's members
			next = append([]entry(nil), old...)
			for i := range next {
				if rng.IntN(3) == 0 {
					next[i].score += 1
				}
			}
		}
		set := map[string]float64{}
		for _, e := range old {
			set[e.item] = float64(e.score)
		}
		add, rem := diff(old, next)
		apply(set, add, rem)
		if len(set) != len(next) {
			t.Fatalf("diff(%v, %v) gives %v", old, next, set)
		}
		for _, e := range next {
			if s, ok := set[e.item]; !ok || s != float64(e.score) {
				t.Fatalf("diff(%v, %v) gives %v", old, next, set)
			}
		}
	}
	old := []entry{{"a", 0, 3}, {"b", 1, 2}, {"c", 2, 1}}
	next := []entry{{"n", 9, 5}, {"a", 0, 3}, {"b", 1, 2}}
	if add, rem := diff(old, next); len(add) != 1 || add[0].Member != "n" || len(rem) != 1 || rem[0] != "c" {
		t.Fatalf("an item entering: add %v, rem %v; want n in, c out", add, rem)
	}
}
