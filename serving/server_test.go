package serving

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// answer is a decoded response: status, and the body as generic JSON.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) code() string {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (a answer) items() []string {
	var out []string
	list, _ := a.body["items"].([]any)
	for _, x := range list {
		out = append(out, x.(map[string]any)["item"].(string))
	}
	return out
}

func do(t *testing.T, method, url, token, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v: %q", method, url, err, raw)
		}
	}
	return a
}

func startFake(t *testing.T, f *fake, opts Options) string {
	t.Helper()
	s, err := New(f, opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestAPI runs every route's answers and error paths over a real HTTP server on the test
// double; the double ranks by brute force, so the lists are the exact expected ones.
func TestAPI(t *testing.T) {
	f := newFake()
	opts := DefaultOptions()
	opts.MaxK, opts.MaxBodyBytes, opts.MaxIDs = 50, 300, 20
	url := startFake(t, f, opts)
	big := `{"candidates":["` + strings.Repeat("x", 400) + `"]}`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string   // error code, or "" for success
		items                           []string // expected list, when not nil
		check                           func(t *testing.T, a answer)
	}{
		{name: "healthz", method: "GET", path: "/healthz", status: 200},
		{name: "readyz", method: "GET", path: "/readyz", status: 200, check: func(t *testing.T, a answer) {
			if a.body["ready"] != true || a.body["version"] != 7.0 {
				t.Errorf("readyz body %v", a.body)
			}
		}},
		{name: "models", method: "GET", path: "/v1/models", status: 200, check: func(t *testing.T, a answer) {
			if a.body["default"] != "bpr" || len(a.body["models"].([]any)) != 2 {
				t.Errorf("models body %v", a.body)
			}
		}},
		{name: "rec default excludes seen", method: "GET", path: "/v1/users/u1/recommendations?k=2", status: 200, items: []string{"b", "c"},
			check: func(t *testing.T, a answer) {
				if a.body["model"] != "bpr" || a.body["user"] != "u1" || a.body["version"] != 7.0 || a.body["fallback"] != nil {
					t.Errorf("body %v", a.body)
				}
				if s := a.body["items"].([]any)[0].(map[string]any)["score"]; s != 2.0 {
					t.Errorf("score of b = %v, want 2", s)
				}
			}},
		{name: "rec default k", method: "GET", path: "/v1/users/u2/recommendations", status: 200, items: []string{"d", "c", "b", "a"}},
		{name: "rec with seen", method: "GET", path: "/v1/users/u1/recommendations?k=2&exclude_seen=false&model=mf", status: 200, items: []string{"a", "b"}},
		{name: "rec candidates", method: "GET", path: "/v1/users/u1/recommendations?candidates=d,c&candidates=a", status: 200, items: []string{"c", "d"}},
		{name: "rec unknown user falls back", method: "GET", path: "/v1/users/new/recommendations?k=2", status: 200, items: []string{"b", "c"},
			check: func(t *testing.T, a answer) {
				if a.body["fallback"] != "popular" {
					t.Errorf("fallback = %v, want popular", a.body["fallback"])
				}
			}},
		{name: "rec unknown user candidates", method: "GET", path: "/v1/users/new/recommendations?candidates=a,d", status: 200, items: []string{"a", "d"}},
		{name: "rec unknown user unknown candidate", method: "GET", path: "/v1/users/new/recommendations?candidates=a,zz", status: 404, code: CodeUnknownItem},
		{name: "k zero", method: "GET", path: "/v1/users/u1/recommendations?k=0", status: 400, code: CodeBadParameter},
		{name: "k text", method: "GET", path: "/v1/users/u1/recommendations?k=ten", status: 400, code: CodeBadParameter},
		{name: "k over max", method: "GET", path: "/v1/users/u1/recommendations?k=51", status: 400, code: CodeBadParameter},
		{name: "exclude_seen bad", method: "GET", path: "/v1/users/u1/recommendations?exclude_seen=maybe", status: 400, code: CodeBadParameter},
		{name: "unknown parameter", method: "GET", path: "/v1/users/u1/recommendations?kk=3", status: 400, code: CodeBadParameter},
		{name: "empty candidate", method: "GET", path: "/v1/users/u1/recommendations?candidates=a,,b", status: 400, code: CodeBadParameter},
		{name: "too many candidates", method: "GET", path: "/v1/users/u1/recommendations?candidates=" + strings.Repeat("a,", 21) + "a", status: 400, code: CodeBadParameter},
		{name: "unknown model", method: "GET", path: "/v1/users/u1/recommendations?model=nope", status: 404, code: CodeUnknownModel},
		{name: "unknown model unknown user", method: "GET", path: "/v1/users/new/recommendations?model=nope", status: 404, code: CodeUnknownModel},
		{name: "post rec", method: "POST", path: "/v1/users/u1/recommendations", ctype: "application/json",
			body: `{"k":1,"exclude_seen":false,"candidates":["c","b"]}`, status: 200, items: []string{"b"}},
		{name: "post rec defaults", method: "POST", path: "/v1/users/u1/recommendations", body: `{}`, status: 200, items: []string{"b", "c", "d"}},
		{name: "post bad json", method: "POST", path: "/v1/users/u1/recommendations", body: `{"k":`, status: 400, code: CodeBadJSON},
		{name: "post syntax", method: "POST", path: "/v1/users/u1/recommendations", body: `{k:1}`, status: 400, code: CodeBadJSON},
		{name: "post empty", method: "POST", path: "/v1/users/u1/recommendations", body: ``, status: 400, code: CodeBadJSON},
		{name: "post wrong type", method: "POST", path: "/v1/users/u1/recommendations", body: `{"k":"3"}`, status: 400, code: CodeBadJSON},
		{name: "post unknown field", method: "POST", path: "/v1/users/u1/recommendations", body: `{"kk":3}`, status: 400, code: CodeBadJSON},
		{name: "post trailing", method: "POST", path: "/v1/users/u1/recommendations", body: `{"k":3} {}`, status: 400, code: CodeBadJSON},
		{name: "post null candidates", method: "POST", path: "/v1/users/u1/recommendations", body: `{"candidates":null,"k":1}`, status: 200, items: []string{"b"}},
		{name: "post empty candidates", method: "POST", path: "/v1/users/u1/recommendations", body: `{"candidates":[]}`, status: 200,
			check: func(t *testing.T, a answer) {
				if l, ok := a.body["items"].([]any); !ok || len(l) != 0 {
					t.Errorf("items %v, want []", a.body["items"])
				}
			}},
		{name: "post k too big", method: "POST", path: "/v1/users/u1/recommendations", body: `{"k":1000}`, status: 400, code: CodeBadParameter},
		{name: "post too large", method: "POST", path: "/v1/users/u1/recommendations", body: big, status: 413, code: CodeBodyTooLarge},
		{name: "post media type", method: "POST", path: "/v1/users/u1/recommendations", ctype: "text/plain", body: `{}`, status: 415, code: CodeUnsupportedMedia},
		{name: "scores", method: "POST", path: "/v1/scores", body: `{"pairs":[{"user":"u1","item":"c"},{"user":"u2","item":"c"},{"user":"u1","item":"a"}]}`, status: 200,
			check: func(t *testing.T, a answer) {
				var got []float64
				for _, x := range a.body["scores"].([]any) {
					got = append(got, x.(map[string]any)["score"].(float64))
				}
				if !reflect.DeepEqual(got, []float64{1, 2, 3}) {
					t.Errorf("scores %v, want [1 2 3]", got)
				}
			}},
		{name: "scores no pairs", method: "POST", path: "/v1/scores", body: `{"pairs":[]}`, status: 400, code: CodeBadParameter},
		{name: "scores empty id", method: "POST", path: "/v1/scores", body: `{"pairs":[{"user":"u1"}]}`, status: 400, code: CodeBadParameter},
		{name: "scores unknown user", method: "POST", path: "/v1/scores", body: `{"pairs":[{"user":"zz","item":"a"}]}`, status: 404, code: CodeUnknownUser},
		{name: "scores unknown item", method: "POST", path: "/v1/scores", body: `{"pairs":[{"user":"u1","item":"zz"}]}`, status: 404, code: CodeUnknownItem},
		{name: "scores unknown model", method: "POST", path: "/v1/scores", body: `{"model":"x","pairs":[{"user":"u1","item":"a"}]}`, status: 404, code: CodeUnknownModel},
		{name: "item", method: "GET", path: "/v1/items/b", status: 200, check: func(t *testing.T, a answer) {
			want := map[string]any{"id": "b", "position": 1.0, "events": 5.0, "has_embedding": true}
			if !reflect.DeepEqual(a.body, want) {
				t.Errorf("item %v, want %v", a.body, want)
			}
		}},
		{name: "item unknown", method: "GET", path: "/v1/items/zz", status: 404, code: CodeUnknownItem},
		{name: "similar cf", method: "GET", path: "/v1/items/a/similar?k=2", status: 200, items: []string{"b", "c"}},
		{name: "similar image", method: "GET", path: "/v1/items/a/similar?by=image", status: 200, items: []string{"b", "c"}},
		{name: "similar image no embedding", method: "GET", path: "/v1/items/d/similar?by=image", status: 404, code: CodeNoEmbedding},
		{name: "similar bad by", method: "GET", path: "/v1/items/a/similar?by=text", status: 400, code: CodeBadParameter},
		{name: "similar bad k", method: "GET", path: "/v1/items/a/similar?k=-1", status: 400, code: CodeBadParameter},
		{name: "similar unknown item", method: "GET", path: "/v1/items/zz/similar", status: 404, code: CodeUnknownItem},
		{name: "similar unknown model", method: "GET", path: "/v1/items/a/similar?model=x", status: 404, code: CodeUnknownModel},
		{name: "no route", method: "GET", path: "/v2/nothing", status: 404, code: CodeNotFound},
		{name: "wrong method", method: "DELETE", path: "/v1/scores", status: 405, code: CodeMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := do(t, c.method, url+c.path, "", c.ctype, c.body)
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.raw)
			}
			if a.code() != c.code {
				t.Fatalf("error code %q, want %q: %s", a.code(), c.code, a.raw)
			}
			if c.code != "" {
				if msg, _ := a.body["error"].(map[string]any)["message"].(string); msg == "" {
					t.Errorf("error without message: %s", a.raw)
				}
			}
			if c.items != nil && !reflect.DeepEqual(a.items(), c.items) {
				t.Errorf("items %v, want %v", a.items(), c.items)
			}
			if c.check != nil {
				c.check(t, a)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	opts := DefaultOptions()
	opts.Token = "s3cret"
	url := startFake(t, newFake(), opts)
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/v1/users/u1/recommendations", "", 401},
		{"/v1/users/u1/recommendations", "wrong", 401},
		{"/v1/users/u1/recommendations", "s3cre", 401},
		{"/v1/users/u1/recommendations", "s3cret", 200},
		{"/v1/items/a", "", 401},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
	} {
		a := do(t, "GET", url+c.path, c.token, "", "")
		if a.status != c.status {
			t.Errorf("%s with token %q: status %d, want %d", c.path, c.token, a.status, c.status)
		}
		if a.status == 401 && (a.code() != CodeUnauthorized || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer")) {
			t.Errorf("401 answer: %s, WWW-Authenticate %q", a.raw, a.header.Get("WWW-Authenticate"))
		}
	}
	// Scheme without a token, and a basic-auth header.
	for _, h := range []string{"Bearer", "Bearer ", "Basic czNjcmV0"} {
		req, _ := http.NewRequest("GET", url+"/v1/models", nil)
		req.Header.Set("Authorization", h)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("Authorization %q: status %d, want 401", h, resp.StatusCode)
		}
	}
}

func TestNotReady(t *testing.T) {
	f := newFake()
	f.ready.Store(false)
	url := startFake(t, f, DefaultOptions())
	for _, p := range []string{"/readyz", "/v1/models", "/v1/users/u1/recommendations", "/v1/items/a", "/v1/items/a/similar"} {
		a := do(t, "GET", url+p, "", "", "")
		if a.status != 503 || a.code() != CodeNotReady || a.header.Get("Retry-After") == "" {
			t.Errorf("%s before ready: %d %s (Retry-After %q), want 503 not_ready", p, a.status, a.raw, a.header.Get("Retry-After"))
		}
	}
	if a := do(t, "GET", url+"/healthz", "", "", ""); a.status != 200 {
		t.Errorf("healthz before ready: %d", a.status)
	}
	f.ready.Store(true)
	if a := do(t, "GET", url+"/readyz", "", "", ""); a.status != 200 {
		t.Errorf("readyz once ready: %d %s", a.status, a.raw)
	}
}

func TestTimeout(t *testing.T) {
	f := newFake()
	f.delay = 5 * time.Second
	opts := DefaultOptions()
	opts.Timeout = 30 * time.Millisecond
	url := startFake(t, f, opts)
	start := time.Now()
	a := do(t, "GET", url+"/v1/users/u1/recommendations", "", "", "")
	if a.status != 504 || a.code() != CodeTimeout {
		t.Fatalf("slow backend: %d %s, want 504 timeout", a.status, a.raw)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("answered after %v; the timeout is 30ms", d)
	}
}

func TestMetrics(t *testing.T) {
	url := startFake(t, newFake(), DefaultOptions())
	do(t, "GET", url+"/v1/users/u1/recommendations?k=0", "", "", "")
	do(t, "GET", url+"/v1/users/u1/recommendations", "", "", "")
	do(t, "GET", url+"/v1/users/u1/recommendations", "", "", "")
	a := do(t, "GET", url+"/metrics", "", "", "")
	for _, want := range []string{
		`visrec_http_requests_total{code="400",route="/v1/users/{user}/recommendations"} 1`,
		`visrec_http_requests_total{code="200",route="/v1/users/{user}/recommendations"} 2`,
		`visrec_http_request_duration_seconds_count{code="200",route="/v1/users/{user}/recommendations"} 2`,
	} {
		if !strings.Contains(a.raw, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestGracefulShutdown: a request in flight when the context ends is answered; afterwards
// the listener is closed.
func TestGracefulShutdown(t *testing.T) {
	f := newFake()
	f.delay = 300 * time.Millisecond
	s, err := New(f, DefaultOptions(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	got := make(chan answer, 1)
	go func() { got <- do(t, "GET", url+"/v1/users/u1/recommendations", "", "", "") }()
	time.Sleep(100 * time.Millisecond) // the request is in the backend now
	cancel()
	a := <-got
	if a.status != 200 || len(a.items()) == 0 {
		t.Errorf("in-flight request during shutdown: %d %s", a.status, a.raw)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepts after shutdown")
	}
	http.DefaultClient.CloseIdleConnections()
}
