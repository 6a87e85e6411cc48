// Command visrec is the face of visrec: one binary with a subcommand per job. Each
// subcommand lives in its own file and registers itself in commands; main owns the process:
// signals, logging and the exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"

	"go.uber.org/zap"
)

// command is one subcommand. run gets a context cancelled on SIGINT/SIGTERM. A streaming
// command (the services and what runs them: update, lists, serve, demo, bench) runs with
// defaultGOGC; batch jobs keep Go's default, trading no memory for latency they do not need.
type command struct {
	summary   string
	run       func(ctx context.Context, log *zap.Logger, args []string) error
	streaming bool
}

var commands = map[string]command{}

func usage() {
	fmt.Fprintf(os.Stderr, "visrec: a stream-processing, visually-aware recommender\n\nusage: visrec <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'visrec <command> -h' for a command's flags.\n")
}

// defaultGOGC is the garbage collector's target that the streaming commands run with unless
// the GOGC environment variable sets one: the heap may grow to 5× the live data between collections
// instead of Go's 2×. The collector's work (a quarter of the CPU while it marks, and the
// allocating goroutines' assists) delays whatever runs meanwhile; with 4× less of it, a new
// item reached its first lists at p99 72 ms instead of 98 ms in `visrec bench freshness`
// (docs/benchmarks.md, Freshness). GOGC=100 restores Go's default; GOMEMLIMIT bounds the
// heap either way.
const defaultGOGC = 400

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "visrec: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if _, set := os.LookupEnv("GOGC"); !set && cmd.streaming {
		debug.SetGCPercent(defaultGOGC)
	}
	log := newLogger()
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, log, os.Args[2:])
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		log.Info("stopped by signal")
	default:
		fmt.Fprintf(os.Stderr, "visrec %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// newLogger logs human-readable lines to stderr; VISREC_LOG=debug|info|warn|error sets the level.
func newLogger() *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.DisableStacktrace = true
	cfg.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	if lv := os.Getenv("VISREC_LOG"); lv != "" {
		if l, err := zap.ParseAtomicLevel(lv); err == nil {
			cfg.Level = l
		}
	}
	log, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return log
}

// envOr returns the environment variable name, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
