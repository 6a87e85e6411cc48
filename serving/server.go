// Package serving is visrec's HTTP/JSON API: recommendations for a user, scores of
// user–item pairs, similar items, item lookup, health, readiness and Prometheus metrics,
// over a Backend (the ranking index) that keeps the model state in memory. docs/serving.md
// describes the API for users and docs/openapi.yaml is its OpenAPI 3 document; a test keeps
// the document and Routes in step.
package serving

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Options configure a Server. DefaultOptions gives the defaults; a zero field takes its default.
type Options struct {
	// Token, when not empty, is the bearer token that every /v1/ request must carry
	// ("Authorization: Bearer <token>"). /healthz, /readyz and /metrics stay open for probes
	// and scrapers.
	Token string
	// MaxK is the largest k a request may ask for.
	MaxK int
	// MaxIDs bounds the candidates of a recommendations request and the pairs of a scores request.
	MaxIDs int
	// MaxIDLen bounds the length of a user or item id, in bytes.
	MaxIDLen int
	// MaxBodyBytes bounds a request body; a larger one is answered 413.
	MaxBodyBytes int64
	// Timeout bounds the work on one request; past it the answer is 504.
	Timeout time.Duration
	// ShutdownGrace is how long Serve waits for requests in flight after its context ends.
	ShutdownGrace time.Duration
	// Lists, with ListMaxAge > 0, is the fast path of recommendations: a request with the
	// defaults of a list (exclude_seen, no candidates) and k no longer than the user's list
	// is answered from the list when the list was written at most ListMaxAge ago; any other
	// request, or a missing, short or older list, or a failed read, is ranked exactly.
	// nil or ListMaxAge 0: every request is ranked (the default).
	Lists      ListSource
	ListMaxAge time.Duration
}

// DefaultOptions: no token, k ≤ 1000, 10,000 ids, ids ≤ 512 bytes, 1 MiB bodies, 2 s per
// request, 10 s to drain at shutdown.
func DefaultOptions() Options {
	return Options{MaxK: 1000, MaxIDs: 10_000, MaxIDLen: 512, MaxBodyBytes: 1 << 20,
		Timeout: 2 * time.Second, ShutdownGrace: 10 * time.Second}
}

func (o *Options) fill() {
	d := DefaultOptions()
	if o.MaxK <= 0 {
		o.MaxK = d.MaxK
	}
	if o.MaxIDs <= 0 {
		o.MaxIDs = d.MaxIDs
	}
	if o.MaxIDLen <= 0 {
		o.MaxIDLen = d.MaxIDLen
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = d.MaxBodyBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = d.ShutdownGrace
	}
}

// Route is one method and path of the API, as registered in the server's mux.
type Route struct {
	Method, Path string
	auth         bool // behind the bearer token
	ready        bool // answers 503 until the backend is ready
}

// Routes lists the API's routes (docs/openapi.yaml documents each of them).
func Routes() []Route {
	return []Route{
		{Method: "GET", Path: "/healthz"},
		{Method: "GET", Path: "/readyz"},
		{Method: "GET", Path: "/metrics"},
		{Method: "GET", Path: "/v1/models", auth: true, ready: true},
		{Method: "GET", Path: "/v1/users/{user}/recommendations", auth: true, ready: true},
		{Method: "POST", Path: "/v1/users/{user}/recommendations", auth: true, ready: true},
		{Method: "POST", Path: "/v1/scores", auth: true, ready: true},
		{Method: "GET", Path: "/v1/items/{item}", auth: true, ready: true},
		{Method: "GET", Path: "/v1/items/{item}/similar", auth: true, ready: true},
	}
}

// Server is the HTTP API over a Backend. It is an http.Handler; Serve runs it on a
// listener with graceful shutdown.
type Server struct {
	b        Backend
	opts     Options
	lim      limits
	log      *zap.Logger
	mux      *http.ServeMux
	token    [sha256.Size]byte
	stopping atomic.Bool

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	sources  *prometheus.CounterVec // recommendations by the path that answered
	misses   *prometheus.CounterVec // list reads that could not serve, by reason
}

// New returns a Server over b. Its metrics are registered in reg, and /metrics serves reg
// (so a caller may register its own collectors there too); a nil reg gets a fresh registry.
func New(b Backend, opts Options, reg *prometheus.Registry, log *zap.Logger) (*Server, error) {
	if b == nil {
		return nil, errors.New("serving: nil backend")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	opts.fill()
	s := &Server{b: b, opts: opts, log: log, mux: http.NewServeMux(),
		lim: limits{maxK: opts.MaxK, maxIDs: opts.MaxIDs, maxIDLen: opts.MaxIDLen}}
	if opts.Token != "" {
		s.token = sha256.Sum256([]byte(opts.Token))
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "visrec_http_requests_total", Help: "HTTP requests answered, by route and status code.",
	}, []string{"route", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "visrec_http_request_duration_seconds",
		Help:    "Time from request to answer, by route and status code.",
		Buckets: []float64{.0002, .0005, .001, .002, .003, .005, .0075, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "code"})
	s.sources = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "visrec_http_recommendations_total", Help: "Recommendations answered, by source (list, ranked, popular).",
	}, []string{"source"})
	s.misses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "visrec_http_list_misses_total", Help: "Recommendations that tried the materialized list and were ranked instead, by reason (missing_or_short, stale, error).",
	}, []string{"reason"})
	for _, c := range []prometheus.Collector{s.requests, s.latency, s.sources, s.misses} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("serving: register metrics: %w", err)
		}
	}
	handlers := map[string]func(http.ResponseWriter, *http.Request) error{
		"GET /healthz":                          s.healthz,
		"GET /readyz":                           s.readyz,
		"GET /v1/models":                        s.models,
		"GET /v1/users/{user}/recommendations":  s.recommendGET,
		"POST /v1/users/{user}/recommendations": s.recommendPOST,
		"POST /v1/scores":                       s.scores,
		"GET /v1/items/{item}":                  s.item,
		"GET /v1/items/{item}/similar":          s.similar,
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	allowed := map[string][]string{}
	for _, rt := range Routes() {
		pattern := rt.Method + " " + rt.Path
		allowed[rt.Path] = append(allowed[rt.Path], rt.Method)
		if rt.Path == "/metrics" {
			s.mux.Handle(pattern, s.instrument(rt.Path, metrics))
			continue
		}
		h, ok := handlers[pattern]
		if !ok {
			return nil, fmt.Errorf("serving: route %s has no handler", pattern)
		}
		s.mux.Handle(pattern, s.instrument(rt.Path, s.wrap(rt, h)))
	}
	// JSON answers for the wrong method and unknown paths (the mux's own are plain text).
	for path, methods := range allowed {
		allow := strings.Join(append(methods, "HEAD"), ", ")
		s.mux.Handle(path, s.instrument(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, &apiError{http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, path, allow)})
		})))
	}
	s.mux.Handle("/", s.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, CodeNotFound, "no route " + clip(r.URL.Path) + " (see docs/openapi.yaml)"})
	})))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve answers requests on ln until ctx ends, then stops accepting, marks itself not ready
// and waits up to ShutdownGrace for the requests in flight. It returns nil after a graceful
// stop.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       s.opts.Timeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          zap.NewStdLog(s.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-done; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("serving: shutdown: %w", err)
	}
	return nil
}

// statusWriter records the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times the requests of one route.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic in handler", zap.String("route", route), zap.Any("panic", p), zap.Stack("stack"))
				if sw.code == 0 {
					writeError(sw, &apiError{http.StatusInternalServerError, CodeInternal, "internal error"})
				}
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			c := strconv.Itoa(code)
			s.requests.WithLabelValues(route, c).Inc()
			s.latency.WithLabelValues(route, c).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

// wrap applies auth, readiness, the body limit and the timeout, and answers a handler's
// error as JSON.
func (s *Server) wrap(rt Route, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.auth && s.opts.Token != "" && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="visrec"`)
			writeError(w, &apiError{http.StatusUnauthorized, CodeUnauthorized, "missing or wrong bearer token (Authorization: Bearer <token>)"})
			return
		}
		if rt.ready && (!s.b.Ready() || s.stopping.Load()) {
			writeError(w, classify(ErrNotReady, nil))
			return
		}
		if r.ContentLength > s.opts.MaxBodyBytes {
			writeError(w, classify(&http.MaxBytesError{Limit: s.opts.MaxBodyBytes}, nil))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
		defer cancel()
		if err := h(w, r.WithContext(ctx)); err != nil {
			e := classify(err, ctx.Err())
			if e.status >= 500 && e.status != http.StatusServiceUnavailable {
				s.log.Warn("request failed", zap.String("route", rt.Path), zap.Int("status", e.status), zap.Error(err))
			}
			writeError(w, e)
		}
	})
}

// authorized compares the bearer token in constant time (hashes first, so that the length
// of the token does not leak either).
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(h[len(prefix):]))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) error {
	if s.stopping.Load() {
		return &apiError{http.StatusServiceUnavailable, CodeNotReady, "the server is shutting down"}
	}
	if !s.b.Ready() {
		return ErrNotReady
	}
	writeJSON(w, http.StatusOK, struct {
		Ready   bool   `json:"ready"`
		Version uint64 `json:"version"`
	}{true, s.b.Version()})
	return nil
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) error {
	ms := s.b.Models()
	writeJSON(w, http.StatusOK, struct {
		Models  []string `json:"models"`
		Default string   `json:"default"`
		Version uint64   `json:"version"`
	}{ms, first(ms), s.b.Version()})
	return nil
}

func first(ms []string) string {
	if len(ms) == 0 {
		return ""
	}
	return ms[0]
}

// model resolves a request's model name: empty is the default (first) model; an unknown one
// is ErrUnknownModel even where the answer would not need the model (the fallback), so that
// a typo is never silently served.
func (s *Server) model(name string) (string, error) {
	ms := s.b.Models()
	if name == "" {
		if len(ms) == 0 {
			return "", ErrNotReady
		}
		return ms[0], nil
	}
	for _, m := range ms {
		if m == name {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w %q (served: %s)", ErrUnknownModel, clip(name), strings.Join(ms, ", "))
}

// item is one entry of a ranked list.
type item struct {
	Item  string  `json:"item"`
	Score float32 `json:"score"`
}

type recResponse struct {
	User    string `json:"user"`
	Model   string `json:"model"`
	Version uint64 `json:"version"`
	// Fallback is "popular" when the user is unknown and the list is the popular-and-fresh
	// fallback (scores are then popularity scores, not model scores); absent otherwise.
	Fallback string `json:"fallback,omitempty"`
	// Source is the path that answered: "list" (the materialized list in Redis, ListAgeMS
	// old), "ranked" (exact ranking in memory) or "popular" (the fallback).
	Source    string `json:"source"`
	ListAgeMS *int64 `json:"list_age_ms,omitempty"`
	Items     []item `json:"items"`
}

func (s *Server) recommendGET(w http.ResponseWriter, r *http.Request) error {
	req, err := s.lim.parseRecQuery(r.URL.Query())
	if err != nil {
		return err
	}
	return s.recommend(w, r, req)
}

func (s *Server) recommendPOST(w http.ResponseWriter, r *http.Request) error {
	if err := jsonContent(r); err != nil {
		return err
	}
	req, err := s.lim.decodeRecBody(r.Body)
	if err != nil {
		return err
	}
	return s.recommend(w, r, req)
}

func jsonContent(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil // no type given: read it as JSON
	}
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return &apiError{http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "the body must be application/json, not " + clip(ct) + " (curl: -H 'Content-Type: application/json')"}
	}
	return nil
}

func (s *Server) recommend(w http.ResponseWriter, r *http.Request, req recRequest) error {
	user := r.PathValue("user")
	if err := s.lim.checkID("user", user); err != nil {
		return err
	}
	model, err := s.model(req.Model)
	if err != nil {
		return err
	}
	version := s.b.Version()
	res := recResponse{User: user, Model: model, Version: version, Source: "ranked"}
	if list, age, ok := s.fromList(r.Context(), model, user, req); ok {
		ms := age.Milliseconds()
		res.Source, res.ListAgeMS, res.Items = "list", &ms, toItems(list)
		s.sources.WithLabelValues(res.Source).Inc()
		writeJSON(w, http.StatusOK, &res)
		return nil
	}
	list, err := s.b.Recommend(r.Context(), model, user, req.K, RecOptions{ExcludeSeen: req.ExcludeSeen, Candidates: req.Candidates})
	if errors.Is(err, ErrUnknownUser) {
		res.Fallback, res.Source = "popular", "popular"
		list, err = s.popular(req)
	}
	if err != nil {
		return err
	}
	res.Items = toItems(list)
	s.sources.WithLabelValues(res.Source).Inc()
	writeJSON(w, http.StatusOK, &res)
	return nil
}

// fromList answers req from the user's materialized list when the fast path is on, the
// request asks what the list holds (seen items excluded, every item a candidate) and the
// list has at least k items and was written at most ListMaxAge ago. The age is measured
// with this server's clock against the writer's (same host, or synchronized clocks); a
// list from the future counts as age 0.
func (s *Server) fromList(ctx context.Context, model, user string, req recRequest) ([]Scored, time.Duration, bool) {
	if s.opts.Lists == nil || s.opts.ListMaxAge <= 0 || !req.ExcludeSeen || req.Candidates != nil {
		return nil, 0, false
	}
	list, written, ok, err := s.opts.Lists.TopList(ctx, model, user, req.K)
	switch {
	case err != nil:
		s.misses.WithLabelValues("error").Inc()
		s.log.Debug("list read failed; ranking instead", zap.Error(err))
		return nil, 0, false
	case !ok:
		s.misses.WithLabelValues("missing_or_short").Inc()
		return nil, 0, false
	}
	age := max(time.Since(written), 0)
	if age > s.opts.ListMaxAge {
		s.misses.WithLabelValues("stale").Inc()
		return nil, 0, false
	}
	return list, age, true
}

// popular is the answer for an unknown user: the popular-and-fresh list, restricted to the
// candidates when the request names some (then every item is ranked by the blend and the
// candidates are kept, in that order). A candidate not in the catalog is ErrUnknownItem, as
// it is for a known user.
func (s *Server) popular(req recRequest) ([]Scored, error) {
	if req.Candidates == nil {
		return s.b.Popular(req.K, nil), nil
	}
	want := make(map[string]bool, len(req.Candidates))
	for _, c := range req.Candidates {
		if _, ok := s.b.Item(c); !ok {
			return nil, fmt.Errorf("%w %q (in candidates)", ErrUnknownItem, clip(c))
		}
		want[c] = true
	}
	out := []Scored{}
	if len(want) == 0 {
		return out, nil
	}
	for _, sc := range s.b.Popular(math.MaxInt32, nil) {
		if want[sc.Item] {
			out = append(out, sc)
			if len(out) == req.K {
				break
			}
		}
	}
	return out, nil
}

func toItems(list []Scored) []item {
	out := make([]item, len(list))
	for i, sc := range list {
		out[i] = item{sc.Item, sc.Score}
	}
	return out
}

type scoredPair struct {
	User  string  `json:"user"`
	Item  string  `json:"item"`
	Score float32 `json:"score"`
}

func (s *Server) scores(w http.ResponseWriter, r *http.Request) error {
	if err := jsonContent(r); err != nil {
		return err
	}
	req, err := s.lim.decodeScoresBody(r.Body)
	if err != nil {
		return err
	}
	model, err := s.model(req.Model)
	if err != nil {
		return err
	}
	version := s.b.Version()
	// One Scores call per distinct user, in order of first appearance.
	byUser := map[string][]int{}
	var users []string
	for i, p := range req.Pairs {
		if _, ok := byUser[p.User]; !ok {
			users = append(users, p.User)
		}
		byUser[p.User] = append(byUser[p.User], i)
	}
	out := make([]scoredPair, len(req.Pairs))
	for _, u := range users {
		idx := byUser[u]
		items := make([]string, len(idx))
		for j, i := range idx {
			items[j] = req.Pairs[i].Item
		}
		sc, err := s.b.Scores(r.Context(), model, u, items)
		if err != nil {
			return err
		}
		if len(sc) != len(items) {
			return fmt.Errorf("backend returned %d scores for %d items", len(sc), len(items))
		}
		for j, i := range idx {
			out[i] = scoredPair{u, items[j], sc[j]}
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Model   string       `json:"model"`
		Version uint64       `json:"version"`
		Scores  []scoredPair `json:"scores"`
	}{model, version, out})
	return nil
}

type itemResponse struct {
	ID           string `json:"id"`
	Position     int    `json:"position"`
	Events       int64  `json:"events"`
	HasEmbedding bool   `json:"has_embedding"`
}

func (s *Server) item(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("item")
	if err := s.lim.checkID("item", id); err != nil {
		return err
	}
	if len(r.URL.Query()) > 0 {
		return badParam("this route takes no query parameters")
	}
	info, ok := s.b.Item(id)
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownItem, clip(id))
	}
	writeJSON(w, http.StatusOK, itemResponse{info.ID, info.Position, info.Events, info.HasEmbedding})
	return nil
}

func (s *Server) similar(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("item")
	if err := s.lim.checkID("item", id); err != nil {
		return err
	}
	q := r.URL.Query()
	for name := range q {
		switch name {
		case "k", "model", "by":
		default:
			return badParam(fmt.Sprintf("unknown query parameter %q (known: k, model, by)", clip(name)))
		}
	}
	k, err := s.lim.k(q.Get("k"), q.Has("k"))
	if err != nil {
		return err
	}
	by := q.Get("by")
	switch by {
	case "":
		by = "cf"
	case "cf", "image":
	default:
		return badParam(fmt.Sprintf("by must be cf or image; got %q", clip(by)))
	}
	model, err := s.model(q.Get("model"))
	if err != nil {
		return err
	}
	version := s.b.Version()
	list, err := s.b.Similar(r.Context(), model, id, k, by)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Item    string `json:"item"`
		Model   string `json:"model"`
		By      string `json:"by"`
		Version uint64 `json:"version"`
		Items   []item `json:"items"`
	}{id, model, by, version, toItems(list)})
	return nil
}
