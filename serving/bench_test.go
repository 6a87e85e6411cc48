package serving

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRecommendHTTP is the server's own cost of a recommendations request (routing,
// auth check, parsing, JSON, metrics) over the in-memory fake backend, in process: what the
// HTTP layer adds to a ranking, in time and allocations.
func BenchmarkRecommendHTTP(b *testing.B) {
	s, err := New(newFake(), DefaultOptions(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/users/u1/recommendations?k=10", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
