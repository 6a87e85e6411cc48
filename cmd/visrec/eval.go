package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/eval/report"
)

func init() {
	commands["eval"] = command{summary: "offline evaluation of the models on a data set and split, with a popularity baseline", run: runEval}
}

const postersDir = "../shared/data/movielens-posters"

func runEval(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	data := fs.String("data", "posters", "data set: 'posters' ("+postersDir+") or a path any loader reads")
	splitKind := fs.String("split", eval.KindTemporal, "split: temporal, random, leave-last-out or cold-item")
	frac := fs.Float64("test-fraction", 0.2, "test share of interactions (cold-item: share of items)")
	seed := fs.Uint64("split-seed", 1, "seed of the random and cold-item splits")
	epochs := fs.Int("epochs", 10, "training epochs of the online models")
	ks := fs.String("k", "10,20", "cut-offs")
	workers := fs.Int("workers", 2, "goroutines ranking users")
	out := fs.String("out", "", "write <out>/<data>-<split>.md and .csv")
	results := fs.String("results", "", "also replace-or-append this run's section in a Markdown file (e.g. docs/results.md)")
	writeSplit := fs.String("write-split", "", "write the split files here (for bench/peers)")
	var mf modelFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	command := report.Command(append([]string{"visrec", "eval"}, args...)...)
	cuts, err := parseInts(*ks)
	if err != nil {
		return fmt.Errorf("--k: %w", err)
	}

	ds, err := loadData(*data)
	if err != nil {
		return err
	}
	sp, err := makeSplit(ds, *splitKind, *frac, *seed)
	if err != nil {
		return err
	}
	log.Info("split", zap.String("data", ds.Name), zap.String("kind", sp.Kind),
		zap.Int("train", len(sp.Train)), zap.Int("test", len(sp.Test)), zap.Int("cold items", len(sp.ColdItems)))
	if *writeSplit != "" {
		if err := eval.WriteSplit(*writeSplit, ds, sp, eval.SplitMeta{Command: command}); err != nil {
			return err
		}
	}

	ms, uopts, err := mf.build()
	if err != nil {
		return err
	}
	eo := eval.DefaultEvalOptions()
	eo.Workers = *workers
	if sp.Kind == eval.KindColdItem {
		eo.Candidates = sp.ColdItems // rank the held-out items only: can a model tell them apart?
	}
	tbl := report.Table{
		Title:   fmt.Sprintf("%s, %s split (%d train, %d test interactions), K=%d, %d epochs", ds.Name, sp.Kind, len(sp.Train), len(sp.Test), mf.factors, *epochs),
		Command: command,
		Columns: []string{"model", "AUC"},
	}
	for _, k := range cuts {
		tbl.Columns = append(tbl.Columns, fmt.Sprintf("Recall@%d", k), fmt.Sprintf("NDCG@%d", k))
	}
	tbl.Columns = append(tbl.Columns, "users", "train s")
	addRow := func(name string, r eval.Report, train time.Duration) {
		row := []any{name, r.AUC}
		for _, k := range cuts {
			at, _ := r.At(k)
			row = append(row, at.Recall, at.NDCG)
		}
		tbl.AddRow(append(row, r.Users, train)...)
	}

	addRow("popularity", eval.Evaluate(eval.NewPopularityScorer(len(ds.Items), sp.Train), len(ds.Items), sp.Train, sp.Test, cuts, eo), 0)
	for _, m := range ms {
		name := mf.label(m.Name())
		bar := newBar(int64(*epochs), "training "+name)
		t0 := time.Now()
		opts := eval.TrainOptions{Epochs: *epochs, Seed: *seed, Updater: uopts, Progress: func(int) { bar.Add(1) }} //nolint:errcheck // display only
		trained, err := eval.TrainOnline(ctx, ds, sp.Train, opts, m)
		if err != nil {
			return err
		}
		trainTime := time.Since(t0)
		bar.Finish() //nolint:errcheck // display only
		s, err := trained.Scorer(m.Name())
		if err != nil {
			return err
		}
		addRow(name, eval.Evaluate(s, len(ds.Items), sp.Train, sp.Test, cuts, eo), trainTime)
	}

	if err := tbl.WriteMarkdown(os.Stdout); err != nil {
		return err
	}
	if *out != "" {
		base := filepath.Join(*out, fmt.Sprintf("%s-%s", ds.Name, sp.Kind))
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		var md strings.Builder
		if err := tbl.WriteMarkdown(&md); err != nil {
			return err
		}
		if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
			return err
		}
		if err := tbl.SaveCSV(base + ".csv"); err != nil {
			return err
		}
	}
	if *results != "" {
		var md strings.Builder
		if err := tbl.WriteMarkdown(&md); err != nil {
			return err
		}
		heading := fmt.Sprintf("Offline: %s, %s split", ds.Name, sp.Kind)
		if err := report.AppendSection(*results, heading, md.String()); err != nil {
			return err
		}
	}
	return nil
}

// loadData reads the named data set: "posters" is the shared MovieLens posters folder.
func loadData(name string) (*datasets.Dataset, error) {
	if name == "posters" {
		return datasets.LoadMovieLensPosters(postersDir)
	}
	return datasets.Load(name, datasets.LoadOptions{})
}

func makeSplit(ds *datasets.Dataset, kind string, frac float64, seed uint64) (*eval.Split, error) {
	switch kind {
	case eval.KindTemporal:
		return eval.TemporalSplit(ds, frac)
	case eval.KindRandom:
		return eval.RandomSplit(ds, frac, seed)
	case eval.KindLeaveLastOut:
		return eval.LeaveLastOut(ds), nil
	case eval.KindColdItem:
		return eval.ColdStartItemSplit(ds, frac, seed)
	}
	return nil, fmt.Errorf("unknown split %q (temporal, random, leave-last-out, cold-item)", kind)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no cut-off")
	}
	return out, nil
}
