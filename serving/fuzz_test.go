package serving

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
)

var fuzzLimits = limits{maxK: 100, maxIDs: 50, maxIDLen: 32}

// checkRec asserts the invariants of an accepted recommendations request.
func checkRec(t *testing.T, r recRequest) {
	if r.K < 1 || r.K > fuzzLimits.maxK {
		t.Fatalf("accepted k %d", r.K)
	}
	if len(r.Candidates) > fuzzLimits.maxIDs {
		t.Fatalf("accepted %d candidates", len(r.Candidates))
	}
	for _, c := range r.Candidates {
		if c == "" || len(c) > fuzzLimits.maxIDLen {
			t.Fatalf("accepted candidate %q", c)
		}
	}
}

// apiErr asserts that a rejection is a 400 with a code, never something else.
func apiErr(t *testing.T, err error) {
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != 400 || (ae.code != CodeBadJSON && ae.code != CodeBadParameter) || ae.message == "" {
		t.Fatalf("rejection is not a 400 with a message: %#v", err)
	}
}

// FuzzRecBody: the POST body decoder never panics, accepts only valid requests, rejects with
// a 400, and an accepted request re-encoded decodes to itself.
func FuzzRecBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"k":5}`, `{"k":0}`, `{"candidates":["a","b"],"exclude_seen":false}`,
		`{"model":"bpr","k":3} x`, `{"k":1e400}`, `{"candidates":[""]}`, `[]`, `null`, `{"k":"5"}`, `{"k":5,"k":6}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := fuzzLimits.decodeRecBody(bytes.NewReader(body))
		if err != nil {
			apiErr(t, err)
			return
		}
		checkRec(t, r)
		enc, _ := json.Marshal(recBody{Model: r.Model, K: &r.K, ExcludeSeen: &r.ExcludeSeen, Candidates: &r.Candidates})
		if r.Candidates == nil {
			enc, _ = json.Marshal(recBody{Model: r.Model, K: &r.K, ExcludeSeen: &r.ExcludeSeen})
		}
		r2, err := fuzzLimits.decodeRecBody(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("re-encoded %s rejected: %v", enc, err)
		}
		if r2.Model != r.Model || r2.K != r.K || r2.ExcludeSeen != r.ExcludeSeen || strings.Join(r2.Candidates, "\x00") != strings.Join(r.Candidates, "\x00") {
			t.Fatalf("round trip %+v -> %s -> %+v", r, enc, r2)
		}
	})
}

// FuzzRecQuery: the GET query parser never panics and accepts only valid requests.
func FuzzRecQuery(f *testing.F) {
	for _, s := range []string{"k=5", "k=0", "k=abc&model=mf", "candidates=a,b&candidates=c", "exclude_seen=0", "x=1", "candidates=", "k=5&k=6", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := fuzzLimits.parseRecQuery(q)
		if err != nil {
			apiErr(t, err)
			return
		}
		checkRec(t, r)
	})
}

// FuzzScoresBody: the scores body decoder never panics and accepts only valid pairs.
func FuzzScoresBody(f *testing.F) {
	for _, s := range []string{`{"pairs":[{"user":"u","item":"i"}]}`, `{"pairs":[]}`, `{"pairs":[{"user":""}]}`, `{"model":1}`, `{"pairs":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := fuzzLimits.decodeScoresBody(bytes.NewReader(body))
		if err != nil {
			apiErr(t, err)
			return
		}
		if len(b.Pairs) == 0 || len(b.Pairs) > fuzzLimits.maxIDs {
			t.Fatalf("accepted %d pairs", len(b.Pairs))
		}
		for _, p := range b.Pairs {
			if p.User == "" || p.Item == "" || len(p.User) > fuzzLimits.maxIDLen || len(p.Item) > fuzzLimits.maxIDLen {
				t.Fatalf("accepted pair %+v", p)
			}
		}
	})
}
