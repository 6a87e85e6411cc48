package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/snapshots"
)

func init() {
	commands["snapshot"] = command{summary: "versioned snapshots in Redis: publish FILE.snap, list, rollback, prune, export", run: runSnapshot}
}

const snapshotUsage = `usage: visrec snapshot <publish|list|rollback|prune|export> [flags]
  publish FILE.snap [--install]     publish a snapshot (from visrec retrain) as its model's next live version;
                                    --install (online models) also makes it the model's state in the store and
                                    rebases the running updaters onto it (docs/snapshots.md), then flips the pointer
  list --model M                    the published versions, the live one marked
  rollback --model M --to V [--install]   make version V live again (--install: and install it again)
  prune --model M [--keep N]        delete all but the newest N versions (never the live one)
  export --model M [--version V] --out FILE.snap   write a published version (default: the live one) to a file`

func runSnapshot(ctx context.Context, log *zap.Logger, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", snapshotUsage)
	}
	fs := flag.NewFlagSet("snapshot "+args[0], flag.ContinueOnError)
	redisAddr := fs.String("redis", envOr("VISREC_REDIS_ADDR", "127.0.0.1:6379"), "Redis address (env VISREC_REDIS_ADDR)")
	namespace := fs.String("namespace", envOr("VISREC_NAMESPACE", "visrec"), "key namespace (env VISREC_NAMESPACE)")
	model := fs.String("model", "", "model name, e.g. wmf")
	to := fs.Int64("to", 0, "rollback: the version to make live")
	version := fs.Int64("version", 0, "export: the version (0: the live one)")
	keep := fs.Int("keep", 5, "prune: versions to keep")
	out := fs.String("out", "", "export: the file to write")
	install := fs.Bool("install", false, "publish, rollback: install the version into the store (an online model's) and rebase the updaters onto it")
	eventsTopic := fs.String("events-topic", events.TopicEvents, "--install: the interactions topic the updaters consume")
	itemsTopic := fs.String("items-topic", events.TopicItems, "--install: the item events topic the updaters consume ('' for none)")
	chunk := fs.Int("chunk", 2000, "--install: rows per store commit")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var file string
	if fs.NArg() > 0 { // publish FILE [flags]: flags may follow the file
		file = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("snapshot %s: unexpected arguments %q\n%s", args[0], fs.Args(), snapshotUsage)
		}
	}
	op := args[0]
	needModel := op != "publish"
	if needModel && *model == "" {
		return fmt.Errorf("snapshot %s: --model is required\n%s", op, snapshotUsage)
	}
	client := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer client.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis at %s does not answer (start it with deploy/services.sh up): %w", *redisAddr, err)
	}
	reg, err := snapshots.New(client, *namespace)
	if err != nil {
		return err
	}
	installSnap := func(snap models.Snapshot) error {
		store, err := openRedis(ctx, *redisAddr, *namespace)
		if err != nil {
			return err
		}
		defer store.Close()
		topics := []string{*eventsTopic}
		if *itemsTopic != "" {
			topics = append(topics, *itemsTopic)
		}
		t0 := time.Now()
		res, err := snapshots.Install(ctx, store, snap, snapshots.InstallOptions{Topics: topics, Chunk: *chunk})
		if err != nil {
			return err
		}
		log.Info("snapshot installed", zap.String("model", snap.Model), zap.Int64("epoch", res.Epoch),
			zap.Any("covered", res.Covered), zap.Strings("assumed_covered_up_to_base", res.Assumed),
			zap.Int("rows_written", res.Written), zap.Int("users_deleted", res.Deleted), zap.Int("items_zeroed", res.Zeroed),
			zap.Int("commits", res.Commits), zap.Duration("took", time.Since(t0)))
		return nil
	}
	switch op {
	case "publish":
		if file == "" {
			return fmt.Errorf("snapshot publish takes one FILE.snap\n%s", snapshotUsage)
		}
		snap, err := readSnapshotFile(file)
		if err != nil {
			return err
		}
		var info snapshots.Info
		if *install {
			// Listed first (a rollback target), installed, and only then live.
			if info, err = reg.Add(ctx, snap); err != nil {
				return err
			}
			if err := installSnap(snap); err != nil {
				return fmt.Errorf("%s v%d published but not installed (not live; install it again with rollback --install): %w", info.Model, info.Version, err)
			}
			if err := reg.Rollback(ctx, info.Model, info.Version); err != nil {
				return err
			}
		} else if info, err = reg.Publish(ctx, snap); err != nil {
			return err
		}
		log.Info("snapshot published and live", zap.String("model", info.Model), zap.Int64("version", info.Version),
			zap.Int("bytes", info.Bytes), zap.Any("offsets", info.Offsets))
		fmt.Printf("%s v%d live\n", info.Model, info.Version)
	case "list":
		list, err := reg.List(ctx, *model)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VERSION\tLIVE\tPUBLISHED\tBYTES\tOFFSETS")
		for _, in := range list {
			live := ""
			if in.Live {
				live = "*"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", in.Version, live, in.PublishedAt.Format(time.RFC3339), in.Bytes, formatOffsets(in.Offsets))
		}
		return w.Flush()
	case "rollback":
		if *to <= 0 {
			return fmt.Errorf("snapshot rollback: --to V is required")
		}
		if *install {
			snap, _, err := reg.Load(ctx, *model, *to)
			if err != nil {
				return err
			}
			if err := installSnap(snap); err != nil {
				return err
			}
		}
		if err := reg.Rollback(ctx, *model, *to); err != nil {
			return err
		}
		fmt.Printf("%s v%d live\n", *model, *to)
	case "prune":
		if *keep < 1 {
			return fmt.Errorf("snapshot prune: --keep must be at least 1")
		}
		gone, err := reg.Prune(ctx, *model, *keep)
		if err != nil {
			return err
		}
		fmt.Printf("%s: deleted versions %v\n", *model, gone)
	case "export":
		if *out == "" {
			return fmt.Errorf("snapshot export: --out FILE.snap is required")
		}
		snap, info, err := reg.Load(ctx, *model, *version)
		if err != nil {
			return err
		}
		if err := writeSnapshotFile(*out, snap); err != nil {
			return err
		}
		fmt.Printf("%s v%d written to %s\n", *model, info.Version, *out)
	default:
		return fmt.Errorf("unknown snapshot operation %q\n%s", op, snapshotUsage)
	}
	return nil
}

// formatOffsets writes topic/partition=offset pairs in a stable order.
func formatOffsets(offs map[string]map[int]int64) string {
	var parts []string
	for topic, ps := range offs {
		for p, o := range ps {
			parts = append(parts, fmt.Sprintf("%s/%d=%d", topic, p, o))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
