package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/visrec/visrec/internal/testenv"
)

// TestServeProcess runs `visrec serve` as a process on a namespace of synthetic rows: it
// becomes ready, answers with the bearer token, and stops cleanly on SIGTERM.
func TestServeProcess(t *testing.T) {
	addr := testenv.RedisAddr(t)
	ns := testenv.Unique("servecmd")
	ctx := context.Background()
	store, err := openRedis(ctx, addr, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer dropNamespace(addr, ns)
	mf := modelFlags{names: "bpr,mf", factors: 8}
	ms, err := servableModels(&mf)
	if err != nil {
		t.Fatal(err)
	}
	if err := fillSynthetic(ctx, store, ms, 500, 20, 5); err != nil {
		t.Fatal(err)
	}
	store.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(visrecBin, "serve", "--redis", addr, "--namespace", ns, "--models", "bpr,mf", "--factors", "8", "--addr", listen)
	cmd.Env = append(cmd.Environ(), "VISREC_TOKEN=t0ken")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // already gone after a clean stop
	url := "http://" + listen
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 20s: %v\n%s", err, logs.String())
		}
	}
	get := func(path, token string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", url+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body) //nolint:errcheck // checked through body below
		return resp.StatusCode, body
	}
	if code, _ := get("/v1/users/u3/recommendations", ""); code != 401 {
		t.Errorf("without the token from VISREC_TOKEN: %d, want 401", code)
	}
	code, body := get("/v1/users/u3/recommendations?k=4&model=mf", "t0ken")
	if items, _ := body["items"].([]any); code != 200 || len(items) != 4 || body["model"] != "mf" {
		t.Errorf("recommendations: %d %v", code, body)
	}
	if code, body := get("/v1/models", "t0ken"); code != 200 || fmt.Sprint(body["models"]) != "[bpr mf]" {
		t.Errorf("models: %d %v", code, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "server stopped after draining requests") {
		t.Errorf("no drain in the log:\n%s", logs.String())
	}
}

// TestServeFirstLoadFails: when the index cannot load (here: the store is closed) serveStore
// stops the server and returns the error instead of answering 503 for ever.
func TestServeFirstLoadFails(t *testing.T) {
	addr := testenv.RedisAddr(t)
	store, err := openRedis(context.Background(), addr, testenv.Unique("servefail"))
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	mf := modelFlags{names: "bpr", factors: 8}
	ms, err := servableModels(&mf)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sf serveFlags
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	sf.register(fs)
	done := make(chan error, 1)
	go func() { done <- serveStore(context.Background(), zap.NewNop(), store, ms, &sf, ln, nil) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "first load") {
			t.Errorf("serveStore on a closed store: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveStore still running 10s after its index failed to load")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after the failure")
	}
}

// TestServeUnknownModelFlag: a model name that is not served fails with its name.
func TestServeUnknownModelFlag(t *testing.T) {
	mf := modelFlags{names: "bpr,nope", factors: 8}
	if _, err := servableModels(&mf); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown model: %v", err)
	}
}

func TestBenchServeNeedsWrk(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := benchServe(context.Background(), zap.NewNop(), nil)
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y wrk") {
		t.Errorf("without wrk: %v", err)
	}
}

func TestParseWrk(t *testing.T) {
	r, err := parseWrk("Running 10s test\nVISREC_RESULT requests=5000 duration_us=2000000 p50_us=800 p90_us=1200 p99_us=4100 p999_us=9000 max_us=12000 non2xx=0 socket_errors=1\n")
	if err != nil {
		t.Fatal(err)
	}
	if r.requests != 5000 || r.rate() != 2500 || r.p50 != 800 || r.p99 != 4100 || r.socketErrors != 1 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseWrk("garbage"); err == nil {
		t.Error("garbage parsed")
	}
}
