package main

import (
	"context"
	"encoding/json"
	"flag"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestDemo runs the demo on a short synthetic stream (a few seconds) and checks what it
// claims: VBPR, which reads the image embeddings, recommends cold items that BPR cannot;
// brand-new items announced after the stream are ranked at once by VBPR, in the top quarter
// of the catalog for the users whose planted taste matches them and in the bottom half for
// those it matches least, while BPR ranks them alike for everyone; and the HTTP API answers
// the printed curl command.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	c := demoConfig{events: 100_000, partitions: 1, k: 10, every: 3, cold: 3, newItems: 4, matches: 10, out: &out}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	c.mf.register(fs)
	c.mf.demoDefaults(map[string]bool{}, true)
	start := time.Now()
	res, err := runDemoWith(ctx, zap.NewNop(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("demo took %s\n%s", time.Since(start).Round(time.Millisecond), out.String())

	stats := map[string]int{}
	for i, name := range res.rankers {
		stats[name] = i
	}
	bpr, vbpr := stats["bpr"], stats["vbpr"]
	if len(res.rankers) != 3 || res.rankers[2] != "popularity" {
		t.Fatalf("rankers %v, want bpr, vbpr, popularity", res.rankers)
	}
	if n := res.cold[vbpr].N; n < 1000 {
		t.Fatalf("only %d cold-item evaluations: the cold slice says nothing", n)
	}
	// On cold items BPR knows almost nothing (a never-seen item has a zero row); VBPR
	// scores them from their embeddings.
	if vc, bc := res.cold[vbpr].Recall(), res.cold[bpr].Recall(); vc < 2*bc || res.cold[vbpr].Hits < 6 {
		t.Errorf("cold Recall@10: vbpr %.4f (%d hits), bpr %.4f: want vbpr at least twice bpr and 6 hits",
			vc, res.cold[vbpr].Hits, bc)
	}
	// Overall, on so short a stream, neither falls far behind popularity.
	pop := res.total[2].Recall()
	for _, r := range []int{bpr, vbpr} {
		if got := res.total[r].Recall(); got < 0.8*pop {
			t.Errorf("%s Recall@10 %.4f, popularity %.4f", res.rankers[r], got, pop)
		}
	}

	if len(res.fresh) != 4 {
		t.Fatalf("%d brand-new items ranked, want 4", len(res.fresh))
	}
	fm := map[string]int{}
	for i, m := range res.freshModels {
		fm[m] = i
	}
	for _, f := range res.fresh {
		v, b := fm["vbpr"], fm["bpr"]
		// VBPR: the item's rank follows the user's planted taste.
		if f.bestRank[v] >= res.catalog/4 || f.worstRank[v] < res.catalog/2 {
			t.Errorf("%s: vbpr median rank %d for its best-matching users, %d for the least-matching (of %d): want < 1/4 and > 1/2 of the catalog",
				f.id, f.bestRank[v]+1, f.worstRank[v]+1, res.catalog)
		}
		// BPR: a zero row, the same score for everyone: taste makes no difference.
		if d := f.bestRank[b] - f.worstRank[b]; d < -res.catalog/50 || d > res.catalog/50 || f.inTop[b] != 0 {
			t.Errorf("%s: bpr median ranks %d (best-matching) and %d (least), %d in top 10: want the same rank for all",
				f.id, f.bestRank[b]+1, f.worstRank[b]+1, f.inTop[b])
		}
	}

	if res.apiStatus != 200 || !strings.Contains(out.String(), res.apiCmd) {
		t.Fatalf("API: status %d, command %q", res.apiStatus, res.apiCmd)
	}
	var body struct {
		User, Model string
		Items       []struct {
			Item  string
			Score float32
		}
	}
	if err := json.Unmarshal([]byte(res.apiBody), &body); err != nil {
		t.Fatalf("API answer %q: %v", res.apiBody, err)
	}
	if body.Model != "vbpr" || body.User != res.apiUser || len(body.Items) < 5 {
		t.Errorf("API answer %+v: want at least 5 vbpr items for %s", body, res.apiUser)
	}
	// The API user is the one for whom a brand-new item ranks highest: where that is in
	// the answer, the answer must show it there.
	if res.apiRank < len(body.Items) && (res.apiItem == "" || body.Items[res.apiRank].Item != res.apiItem) {
		t.Errorf("API answer %+v: want the brand-new %q at #%d", body.Items, res.apiItem, res.apiRank+1)
	}
}
