package toplists

import (
	"testing"
	"time"
)

// TestRefreshQueue: due order, one entry per user (the earlier due time wins), and the
// debounce bar after a refresh.
func TestRefreshQueue(t *testing.T) {
	ml := newModelLists("m", 2)
	t0 := time.Unix(1000, 0)
	ml.schedule("a", t0, t0.Add(3*time.Second))
	ml.schedule("b", t0, t0.Add(1*time.Second))
	ml.schedule("c", t0, t0.Add(2*time.Second))
	ml.schedule("a", t0, t0.Add(5*time.Second)) // later: keeps 3s
	ml.schedule("c", t0, t0.Add(500*time.Millisecond))
	if len(ml.queue) != 3 {
		t.Fatalf("queue has %d entries, want 3 (one per user)", len(ml.queue))
	}
	var order []string
	for len(ml.queue) > 0 {
		order = append(order, ml.pop().user)
	}
	if want := []string{"c", "b", "a"}; order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Fatalf("pop order %v, want %v", order, want)
	}
	if len(ml.queued) != 0 {
		t.Fatalf("queued index not emptied: %v", ml.queued)
	}
	slot := ml.set("a", []float32{1, 2}, nil)
	ml.lastRefresh[slot] = t0
	if nb := ml.notBefore("a", time.Second, t0.Add(300*time.Millisecond)); !nb.Equal(t0.Add(time.Second)) {
		t.Fatalf("notBefore right after a refresh = %v, want the refresh + debounce", nb)
	}
	if nb := ml.notBefore("a", time.Second, t0.Add(2*time.Second)); !nb.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("notBefore after a quiet debounce = %v, want now", nb)
	}
	if nb := ml.notBefore("new", time.Second, t0); !nb.Equal(t0) {
		t.Fatalf("notBefore of a new user = %v, want now", nb)
	}
}
