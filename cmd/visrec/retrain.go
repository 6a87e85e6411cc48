package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/models"
)

func init() {
	commands["retrain"] = command{summary: "train one model on a whole data set or log and write a snapshot", run: runRetrain}
}

// runRetrain trains --model on every interaction of --data and writes its snapshot, which
// `visrec update --from-snapshot` (online models) starts from.
func runRetrain(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("retrain", flag.ContinueOnError)
	data := fs.String("data", "posters", "data set: 'posters' ("+postersDir+") or a path any loader reads")
	out := fs.String("out", "", "snapshot file to write (required)")
	epochs := fs.Int("epochs", 10, "epochs (ALS iterations for wmf, pmf-als and mf-als)")
	forUpdate := fs.Bool("for-update", false, "mf-als only: write the online mf's snapshot (rows with ids), which visrec update --models mf --from-snapshot continues from (same --factors)")
	var mf modelFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: visrec retrain --models M --out FILE.snap [--data posters|PATH] [--epochs N] [--for-update]")
	}
	labels := mf.labels()
	if len(labels) != 1 {
		return fmt.Errorf("retrain trains one model at a time, got %q", mf.names)
	}
	if *forUpdate && labels[0] != "mf-als" {
		return fmt.Errorf("--for-update is for mf-als (the batch form of the online mf), not %q", labels[0])
	}
	ds, err := loadData(*data)
	if err != nil {
		return err
	}
	bar := newBar(int64(*epochs), "training "+labels[0])
	tick := func(int) { bar.Add(1) } //nolint:errcheck // display only
	t0 := time.Now()
	var snap models.Snapshot
	if batchModels[labels[0]] {
		m, err := trainBatch(labels[0], ds, ds.Interactions, mf.factors, *epochs, tick)
		if err != nil {
			return err
		}
		if snap = m.Snapshot(); *forUpdate {
			if snap, err = m.(*models.PMF).OnlineSnapshot(ds.Users, ds.Items); err != nil {
				return err
			}
		}
	} else {
		ms, uopts, err := mf.build()
		if err != nil {
			return err
		}
		on, err := eval.TrainOnline(ctx, ds, ds.Interactions, eval.TrainOptions{Epochs: *epochs, Seed: mf.seed, Updater: uopts,
			AfterEpoch: func(e int, _ *eval.Online) { tick(e) }}, ms...)
		if err != nil {
			return err
		}
		if snap, err = on.Snapshot(ms[0].Name()); err != nil {
			return err
		}
	}
	bar.Finish() //nolint:errcheck // display only
	if snap.Meta == nil {
		snap.Meta = map[string]string{}
	}
	snap.Meta["data"], snap.Meta["trained_at"] = ds.Name, time.Now().UTC().Format(time.RFC3339)
	snap.Meta["interactions"] = fmt.Sprint(len(ds.Interactions))
	if err := writeSnapshotFile(*out, snap); err != nil {
		return err
	}
	log.Info("snapshot written", zap.String("model", snap.Model), zap.String("file", *out),
		zap.Int("interactions", len(ds.Interactions)), zap.Duration("took", time.Since(t0)))
	return nil
}

// writeSnapshotFile writes snap to path atomically (a temporary file, then a rename).
func writeSnapshotFile(path string, snap models.Snapshot) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := models.WriteSnapshot(tmp, snap); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readSnapshotFile reads a snapshot written by writeSnapshotFile.
func readSnapshotFile(path string) (models.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return models.Snapshot{}, err
	}
	defer f.Close()
	snap, err := models.ReadSnapshot(f)
	if err != nil {
		return models.Snapshot{}, fmt.Errorf("%s: %w", path, err)
	}
	return snap, nil
}
