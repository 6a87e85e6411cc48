package models

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The MovieLens test replays ml-latest-small (../shared/data, not committed) in timestamp
// order through BPR.Step, every rating an implicit positive, and measures test-then-train
// AUC: before each 5th event is learnt, its item's score is compared with 50 items drawn
// from the catalogue seen so far. It takes about a second; without the data it skips, unless
// CI is set.

const movieLensRatings = "../../shared/data/movielens-posters/ratings.csv"

type mlEvent struct{ user, item int }

func loadMovieLens(t *testing.T) []mlEvent {
	t.Helper()
	f, err := os.Open(filepath.FromSlash(movieLensRatings))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer f.Close()
	type row struct {
		mlEvent
		ts int64
	}
	var rows []row
	users, items := map[string]int{}, map[string]int{}
	id := func(m map[string]int, s string) int {
		if v, ok := m[s]; ok {
			return v
		}
		m[s] = len(m)
		return len(m) - 1
	}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		p := strings.Split(sc.Text(), ",")
		if len(p) != 4 {
			t.Fatalf("bad line %q", sc.Text())
		}
		ts, err := strconv.ParseInt(p[3], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row{mlEvent{id(users, p[0]), id(items, p[1])}, ts})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(rows, func(a, b int) bool { return rows[a].ts < rows[b].ts })
	evs := make([]mlEvent, len(rows))
	for k, r := range rows {
		evs[k] = r.mlEvent
	}
	return evs
}

// prequentialAUC returns the test-then-train AUC over the second half of the stream.
func prequentialAUC(m Online, evs []mlEvent, seed uint64) float64 {
	rng := newRNG(seed)
	users := map[int][]float32{}
	itemIndex := map[int]int{}
	items := newRowTable(0, m.ItemDim())
	global := make([]float32, m.GlobalDim())
	var hits, pairs float64
	ex := &Example{Global: global, Value: 1, Weight: 1}
	for e, ev := range evs {
		u, ok := users[ev.user]
		if !ok {
			u = make([]float32, m.UserDim())
			m.InitUser(u, rng)
			users[ev.user] = u
		}
		i, known := itemIndex[ev.item]
		n := len(itemIndex)
		if known && e > len(evs)/2 && e%5 == 0 {
			si := m.Score(u, items.at(i), global)
			for k := 0; k < 50; k++ {
				if j := rng.IntN(n); j != i {
					switch sj := m.Score(u, items.at(j), global); {
					case si > sj:
						hits++
					case si == sj:
						hits += 0.5
					}
					pairs++
				}
			}
		}
		if !known {
			i = n
			itemIndex[ev.item] = i
			items.data = append(items.data, make([]float32, items.width)...)
			n++
		}
		if n < 2 {
			continue
		}
		j := rng.IntN(n - 1)
		if j >= i {
			j++
		}
		ex.User, ex.Item, ex.Neg = u, items.at(i), items.at(j)
		m.Step(ex)
	}
	return hits / pairs
}

// popularity scores an item by how often it was seen: the baseline a personalised model
// must beat.
type popularity struct{ *BPR }

func (popularity) Step(ex *Example) float32                   { ex.Item[0]++; return 0 }
func (popularity) Score(user, item, global []float32) float32 { return item[0] }

func TestBPRMovieLensPrequential(t *testing.T) {
	evs := loadMovieLens(t)
	pop := prequentialAUC(popularity{NewBPR(DefaultBPROptions())}, evs, 1)
	auc := prequentialAUC(NewBPR(DefaultBPROptions()), evs, 1)
	t.Logf("MovieLens test-then-train AUC, second half: BPR %.4f, popularity %.4f", auc, pop)
	if auc < 0.83 || auc < pop+0.01 {
		t.Errorf("BPR AUC %.4f, want >= 0.83 and >= popularity (%.4f) + 0.01", auc, pop)
	}
}
