package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/toplists"
	"github.com/visrec/visrec/updater"
)

func init() {
	benches["serve"] = command{summary: "HTTP top-k latency and requests/s of 'visrec serve', driven by wrk", run: benchServe}
}

// benchServe fills a fresh Redis namespace with synthetic model rows (through the feature
// store's transactions, as the updater writes them) and, for the first --list-users users,
// materialized lists in the format of docs/lists.md; serves it in-process with the list fast
// path on, and drives the server from a second process, wrk, on loopback. Each path is
// measured apart: requests for users without a list are ranked exactly, requests for users
// with one are answered from it; each first on one connection (one request at a time:
// latency), then on several (sustained requests/s). Each request asks for the top k of a
// random user of its range.
func benchServe(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	redisAddr := fs.String("redis", envOr("VISREC_REDIS_ADDR", "127.0.0.1:6379"), "Redis address (env VISREC_REDIS_ADDR)")
	nItems := fs.Int("items", 100_000, "catalog items")
	nUsers := fs.Int("users", 10_000, "users (the requests pick one at random)")
	nSeen := fs.Int("seen", 20, "items each user has seen (excluded from the answers)")
	k := fs.Int("k", 10, "items per answer")
	dur := fs.Duration("duration", 10*time.Second, "length of each measured wrk run")
	conns := fs.Int("connections", 16, "connections of the requests/s run")
	threads := fs.Int("wrk-threads", 1, "wrk threads of the requests/s run (the server shares the machine's cores with wrk)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the server process during the requests/s run to this file")
	keep := fs.Bool("keep", false, "keep the benchmark's Redis namespace (printed) instead of deleting it")
	listUsers := fs.Int("list-users", 5_000, "users u0.. given a materialized list (the list path's requests); the others have none (the ranked path's); 0: no list runs")
	listK := fs.Int("list-k", 50, "items in each materialized list (visrec lists --k)")
	var sf serveFlags
	sf.register(fs)
	var mf modelFlags
	mf.registerServing(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listUsers < 0 || *listUsers >= *nUsers || (*listUsers > 0 && *listK < *k) {
		return fmt.Errorf("--list-users must be in [0, --users) and --list-k at least --k")
	}
	if *listUsers > 0 && sf.listMaxAge == 0 {
		// The lists are written once, before the runs: they must stay fresh through them.
		sf.listMaxAge = time.Hour
	}
	sf.redisAddr, sf.ns = *redisAddr, ""
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("bench serve needs wrk, the HTTP load generator, on PATH: sudo apt-get install -y wrk (Debian/Ubuntu)")
	}
	ms, err := servableModels(&mf)
	if err != nil {
		return err
	}
	ns := fmt.Sprintf("bench-serve-%d", time.Now().UnixNano()%1e9)
	sf.ns = ns
	store, err := openRedis(ctx, *redisAddr, ns)
	if err != nil {
		return err
	}
	defer store.Close()
	if *keep {
		log.Info("keeping the benchmark namespace", zap.String("namespace", ns))
	} else {
		defer dropNamespace(*redisAddr, ns)
	}
	t0 := time.Now()
	if err := fillSynthetic(ctx, store, ms, *nItems, *nUsers, *nSeen); err != nil {
		return err
	}
	fmt.Printf("wrote %d items and %d users (models %s, K=%d) to Redis namespace %s in %.1fs\n",
		*nItems, *nUsers, mf.names, mf.factors, ns, time.Since(t0).Seconds())
	if *listUsers > 0 {
		t0 = time.Now()
		if err := writeLists(ctx, *redisAddr, ns, ms[0].Name(), *listUsers, *listK, *nItems); err != nil {
			return err
		}
		fmt.Printf("wrote lists of %d items for users u0..u%d (model %s) in %.1fs; server --list-max-age %s\n",
			*listK, *listUsers-1, ms[0].Name(), time.Since(t0).Seconds(), sf.listMaxAge)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan struct{})
	srvDone := make(chan error, 1)
	t0 = time.Now()
	go func() {
		srvDone <- serveStore(sctx, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), store, ms, &sf, ln, ready)
	}()
	select {
	case <-ready:
	case err := <-srvDone:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	fmt.Printf("index loaded in %.1fs; server on %s (GOMAXPROCS %d, %d CPUs)\n", time.Since(t0).Seconds(), ln.Addr(), runtime.GOMAXPROCS(0), runtime.NumCPU())
	url := "http://" + ln.Addr().String()
	token := sf.options().Token
	if err := checkServing(url, token, "u"+strconv.Itoa(*listUsers), *k, "ranked"); err != nil {
		return err
	}
	if *listUsers > 0 {
		if err := checkServing(url, token, "u0", *k, "list"); err != nil {
			return err
		}
	}

	dir, err := os.MkdirTemp("", "visrec-bench-serve")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "random_users.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return err
	}
	// route "rec" asks for users [lo, hi), "item" looks up items [lo, hi).
	run := func(name, route string, lo, hi, threads, conns int, d time.Duration) (wrkResult, error) {
		cmdArgs := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + d.String(), "--timeout", "5s",
			"-s", script, url, "--", route, strconv.Itoa(lo), strconv.Itoa(hi), strconv.Itoa(*k), token}
		fmt.Printf("%s: wrk %s\n", name, strings.Join(cmdArgs[:len(cmdArgs)-1], " "))
		out, err := exec.CommandContext(ctx, wrk, cmdArgs...).CombinedOutput()
		if err != nil {
			return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, out)
		}
		res, err := parseWrk(string(out))
		if err != nil {
			return res, fmt.Errorf("%w in wrk's output:\n%s", err, out)
		}
		if res.non2xx > 0 || res.socketErrors > 0 {
			return res, fmt.Errorf("%s: %d answers were not 2xx and %d socket errors: the figures would be wrong", name, res.non2xx, res.socketErrors)
		}
		return res, nil
	}
	if _, err := run("warm-up", "rec", *listUsers, *nUsers, 1, 4, 2*time.Second); err != nil {
		return err
	}
	stopProfile := func() {}
	if *cpuProfile != "" {
		if stopProfile, err = startCPUProfile(*cpuProfile); err != nil {
			return err
		}
	}
	// measure runs the latency and the requests/s runs of one path.
	measure := func(path string, lo, hi int) (lat, thr wrkResult, err error) {
		lat, err = run(path+": latency (one connection, one request at a time)", "rec", lo, hi, 1, 1, *dur)
		if err != nil {
			return
		}
		fmt.Printf("  %d requests, %.0f requests/s; latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
			lat.requests, lat.rate(), lat.p50/1e3, lat.p90/1e3, lat.p99/1e3, lat.p999/1e3, lat.max/1e3)
		thr, err = run(fmt.Sprintf("%s: requests/s (%d connections)", path, *conns), "rec", lo, hi, *threads, *conns, *dur)
		if err != nil {
			return
		}
		fmt.Printf("  %d requests, %.0f requests/s; latency p50 %.2f ms, p99 %.2f ms\n", thr.requests, thr.rate(), thr.p50/1e3, thr.p99/1e3)
		return
	}
	rLat, rThr, err := measure("ranked", *listUsers, *nUsers)
	stopProfile()
	if err != nil {
		return err
	}
	var lLat, lThr wrkResult
	if *listUsers > 0 {
		if lLat, lThr, err = measure("list", 0, *listUsers); err != nil {
			return err
		}
	}
	// The same load on item lookups, which rank nothing: what the HTTP layer, JSON and wrk
	// cost on this machine, apart from the ranking.
	base, err := run(fmt.Sprintf("baseline: item lookup, no ranking (%d connections)", *conns), "item", 0, *nItems, *threads, *conns, min(*dur, 5*time.Second))
	if err != nil {
		return err
	}
	fmt.Printf("  %d requests, %.0f requests/s; latency p50 %.2f ms, p99 %.2f ms\n", base.requests, base.rate(), base.p50/1e3, base.p99/1e3)
	fmt.Printf("summary: %d items, K=%d, top-%d of a random user (of %d) excluding %d seen (goals: p99 <= 5 ms, >= 5,000 requests/s)\n",
		*nItems, mf.factors, *k, *nUsers, *nSeen)
	fmt.Printf("  ranked: one at a time p50 %.2f ms, p99 %.2f ms; %.0f requests/s with %d connections\n", rLat.p50/1e3, rLat.p99/1e3, rThr.rate(), *conns)
	if *listUsers > 0 {
		fmt.Printf("  list:   one at a time p50 %.2f ms, p99 %.2f ms; %.0f requests/s with %d connections\n", lLat.p50/1e3, lLat.p99/1e3, lThr.rate(), *conns)
	}
	stop()
	if err := <-srvDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// fillSynthetic writes n items and users of every model with random rows (N(0, 0.1)), a
// power-law interaction count per item, a catalog and each user's seen items, in
// transactions of 2,000 rows, as the updater's flushes would.
func fillSynthetic(ctx context.Context, store featurestore.Store, ms []models.Servable, nItems, nUsers, nSeen int) error {
	rng := rand.New(rand.NewPCG(42, 1))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.1)
		}
		return v
	}
	delta := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(float32(rng.NormFloat64() * 0.1))
		}
		return v
	}
	const batch = 2000
	bar := newBar(int64(nItems+nUsers), "writing rows")
	defer bar.Finish() //nolint:errcheck // display only
	tx := store.Begin()
	for _, m := range ms {
		if m.GlobalDim() > 0 {
			tx.AddVector(m.Name()+":global", "g", delta(m.GlobalDim()))
		}
	}
	for i := 0; i < nItems; i++ {
		id := "i" + strconv.Itoa(i)
		tx.AppendCatalog(updater.CatalogItems, id)
		for _, m := range ms {
			tx.AddVector(m.Name()+":items", id, delta(m.ItemDim()))
		}
		tx.IncrCounter(updater.CounterItemEvents, id, int64(1+1000*math.Pow(rng.Float64(), 8)))
		if (i+1)%batch == 0 || i == nItems-1 {
			if _, err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("write items: %w", err)
			}
			bar.Add(batch) //nolint:errcheck // display only
			tx = store.Begin()
		}
	}
	seen := make([]string, nSeen)
	for u := 0; u < nUsers; u++ {
		id := "u" + strconv.Itoa(u)
		for _, m := range ms {
			tx.SetVector(m.Name()+":users", id, fill(m.UserDim()))
		}
		for j := range seen {
			seen[j] = "i" + strconv.Itoa(rng.IntN(nItems))
		}
		if nSeen > 0 {
			tx.AddToSet("seen", id, seen...)
		}
		if (u+1)%batch == 0 || u == nUsers-1 {
			if _, err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("write users: %w", err)
			}
			bar.Add(batch) //nolint:errcheck // display only
			tx = store.Begin()
		}
	}
	tx.Rollback()
	return nil
}

// checkServing asks once for user's top k and checks that source answered, so that a
// misconfigured run fails before it is measured.
func checkServing(url, token, user string, k int, source string) error {
	req, _ := http.NewRequest("GET", url+"/v1/users/"+user+"/recommendations?k="+strconv.Itoa(k), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"source":"`+source+`"`) {
		return fmt.Errorf("check request: %d %s", resp.StatusCode, body)
	}
	return nil
}

// wrkScript asks for the top k of a random user u<lo>..u<hi-1> (route "rec") or looks up a
// random item i<lo>..i<hi-1> (route "item"); done prints wrk's figures in one line for parseWrk
// (latencies in microseconds).
const wrkScript = `
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end
function init(args)
  route, lo, hi, k = args[1], tonumber(args[2]), tonumber(args[3]), args[4]
  math.randomseed(os.time() * 1000 + (seed or 0))
  if args[5] and args[5] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[5]
  end
end
function request()
  if route == "item" then
    return wrk.format("GET", "/v1/items/i" .. math.random(lo, hi - 1))
  end
  return wrk.format("GET", "/v1/users/u" .. math.random(lo, hi - 1) .. "/recommendations?k=" .. k)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("VISREC_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
`

type wrkResult struct {
	requests, durationUS, non2xx, socketErrors int64
	p50, p90, p99, p999, max                   float64 // microseconds
}

func (r wrkResult) rate() float64 { return float64(r.requests) / (float64(r.durationUS) / 1e6) }

var wrkLine = regexp.MustCompile(`VISREC_RESULT requests=(\d+) duration_us=(\d+) p50_us=(\d+) p90_us=(\d+) p99_us=(\d+) p999_us=(\d+) max_us=(\d+) non2xx=(\d+) socket_errors=(\d+)`)

func parseWrk(out string) (wrkResult, error) {
	m := wrkLine.FindStringSubmatch(out)
	if m == nil {
		return wrkResult{}, errors.New("no VISREC_RESULT line")
	}
	n := make([]int64, len(m)-1)
	for i := range n {
		n[i], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	return wrkResult{requests: n[0], durationUS: n[1], p50: float64(n[2]), p90: float64(n[3]), p99: float64(n[4]),
		p999: float64(n[5]), max: float64(n[6]), non2xx: n[7], socketErrors: n[8]}, nil
}

// writeLists writes, for users u0..u(n-1) of model, a list of k random items with decreasing
// scores and the write time now, in the format of docs/lists.md (one JSON document per user,
// written with MSET per batch, as visrec lists writes it; their content does not matter to
// the speed of serving them).
func writeLists(ctx context.Context, addr, ns, model string, n, k, nItems int) error {
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	rng := rand.New(rand.NewPCG(7, 1))
	now := time.Now()
	const batch = 500
	entries := make([]toplists.Entry, k)
	var doc []byte
	for lo := 0; lo < n; lo += batch {
		kv := make([]any, 0, 2*batch)
		for u := lo; u < min(lo+batch, n); u++ {
			score := 1.0
			for j := range entries {
				score -= rng.Float64() * 0.01
				entries[j] = toplists.Entry{Item: "i" + strconv.Itoa(rng.IntN(nItems)), Score: float32(score)}
			}
			doc = toplists.AppendList(doc[:0], now, entries)
			kv = append(kv, toplists.ListKey(ns, model, "u"+strconv.Itoa(u)), string(doc))
		}
		if err := client.MSet(ctx, kv...).Err(); err != nil {
			return fmt.Errorf("write lists: %w", err)
		}
	}
	return nil
}
