package main

import (
	"context"
	"encoding/csv"
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
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

func init() {
	commands["eval"] = command{summary: "offline evaluation of the models on a data set and split, with a popularity baseline", run: runEval}
}

const postersDir = "../shared/data/movielens-posters"

func runEval(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	data := fs.String("data", "posters", "data set: 'posters' ("+postersDir+") or a path any loader reads")
	splitKind := fs.String("split", eval.KindTemporal, "split: temporal, random, leave-last-out, cold-item, or prequential (test-then-train over the log in time order)")
	every := fs.Int("eval-every", 1, "prequential: evaluate one in this many eligible events")
	window := fs.Int("window", 1000, "prequential: evaluations per point of the curve")
	frac := fs.Float64("test-fraction", 0.2, "test share of interactions (cold-item: share of items)")
	seed := fs.Uint64("split-seed", 1, "seed of the random and cold-item splits")
	epochs := fs.Int("epochs", 10, "training epochs of the online models")
	ks := fs.String("k", "10,20", "cut-offs")
	workers := fs.Int("workers", 2, "goroutines ranking users")
	out := fs.String("out", "", "write <out>/<data>-<split>.md and .csv")
	results := fs.String("results", "", "also replace-or-append this run's section in a Markdown file (e.g. docs/results.md)")
	writeSplit := fs.String("write-split", "", "write the split files here (for bench/peers)")
	peers := fs.String("peers", "", "add the rows of this bench/peers CSV (same split files) to the table")
	epochCurve := fs.Bool("epoch-curve", false, "evaluate after every epoch and plot Recall@K against epochs (needs --out)")
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
	if *splitKind == "prequential" {
		return runPrequential(ctx, ds, &mf, cuts[0], *every, *window, *out, *results, command)
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
		if err := writeFeatures(*writeSplit, ds); err != nil {
			return err
		}
	}

	// Batch models (batchModels: wmf, vbpr, neumf, ...) train on the split at once; the others learn online and
	// train through the updater.
	var batch, online []string
	for _, n := range mf.labels() {
		if batchModels[n] {
			batch = append(batch, n)
		} else {
			online = append(online, n)
		}
	}
	mf.names = strings.Join(online, ",")
	if ds.FeatureDim > 0 {
		mf.featureDim = ds.FeatureDim // the visual models read the data set's features
	}
	var ms []models.Online
	var uopts updater.Options
	if len(online) > 0 {
		if ms, uopts, err = mf.build(); err != nil {
			return err
		}
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
	var curves []report.Series
	for _, name := range batch {
		bar := newBar(int64(*epochs), "training "+name)
		t0 := time.Now()
		m, err := trainBatch(name, ds, sp.Train, mf.factors, *epochs, func(int) { bar.Add(1) }) //nolint:errcheck // display only
		if err != nil {
			return err
		}
		bar.Finish() //nolint:errcheck // display only
		addRow(name, eval.Evaluate(m, len(ds.Items), sp.Train, sp.Test, cuts, eo), time.Since(t0))
	}
	for i, m := range ms {
		name := online[i]
		bar := newBar(int64(*epochs), "training "+name)
		curve := report.Series{Name: name}
		var evalTime time.Duration
		after := func(epoch int, o *eval.Online) {
			bar.Add(1) //nolint:errcheck // display only
			if !*epochCurve {
				return
			}
			t := time.Now()
			s, err := o.Scorer(m.Name())
			if err != nil {
				return
			}
			at, _ := eval.Evaluate(s, len(ds.Items), sp.Train, sp.Test, cuts[:1], eo).At(cuts[0])
			curve.X, curve.Y = append(curve.X, float64(epoch)), append(curve.Y, at.Recall)
			evalTime += time.Since(t)
		}
		t0 := time.Now()
		opts := eval.TrainOptions{Epochs: *epochs, Seed: *seed, Updater: uopts, AfterEpoch: after}
		trained, err := eval.TrainOnline(ctx, ds, sp.Train, opts, m)
		if err != nil {
			return err
		}
		trainTime := time.Since(t0) - evalTime
		curves = append(curves, curve)
		bar.Finish() //nolint:errcheck // display only
		s, err := trained.Scorer(m.Name())
		if err != nil {
			return err
		}
		addRow(name, eval.Evaluate(s, len(ds.Items), sp.Train, sp.Test, cuts, eo), trainTime)
	}

	if *peers != "" {
		if err := addPeerRows(&tbl, *peers, cuts); err != nil {
			return err
		}
	}
	base := fmt.Sprintf("%s-%s", ds.Name, sp.Kind)
	extra := ""
	if *epochCurve && *out != "" {
		title := fmt.Sprintf("Recall@%d against epochs, %s, %s split", cuts[0], ds.Name, sp.Kind)
		png := filepath.Join(*out, base+"-epochs.png")
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		if err := report.PlotLines(png, title, "epoch", fmt.Sprintf("Recall@%d", cuts[0]), command, curves); err != nil {
			return err
		}
		extra = "\n" + imageLink(title, png, *results) + "\n"
	}
	return publish(&tbl, *out, *results, base, fmt.Sprintf("Offline: %s, %s split", ds.Name, sp.Kind), extra)
}

// imageLink is a Markdown image of png, relative to the page results when there is one.
func imageLink(title, png, results string) string {
	link := png
	if results != "" {
		if rel, err := filepath.Rel(filepath.Dir(results), png); err == nil {
			link = rel
		}
	}
	return fmt.Sprintf("![%s](%s)", title, filepath.ToSlash(link))
}

// publish prints tbl, writes <out>/<base>.md and .csv when out is set, and replaces or
// appends the section heading of the Markdown file results when that is set; extra is
// Markdown appended below the table (a plot, say).
func publish(tbl *report.Table, out, results, base, heading, extra string) error {
	var md strings.Builder
	if err := tbl.WriteMarkdown(&md); err != nil {
		return err
	}
	md.WriteString(extra)
	fmt.Print(md.String())
	if out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, base+".md"), []byte(md.String()), 0o644); err != nil {
			return err
		}
		if err := tbl.SaveCSV(filepath.Join(out, base+".csv")); err != nil {
			return err
		}
	}
	if results != "" {
		return report.AppendSection(results, heading, md.String())
	}
	return nil
}

// runPrequential replays ds in time order through an updater on the in-memory store (the
// production update code, without Kafka) with a prequential evaluator, and reports
// cumulative and cold-start-item figures and, with out, a PNG of the moving window.
func runPrequential(ctx context.Context, ds *datasets.Dataset, mf *modelFlags, k, every, window int, out, results, command string) error {
	if ds.FeatureDim > 0 {
		mf.featureDim = ds.FeatureDim
	}
	ms, uopts, err := mf.build()
	if err != nil {
		return err
	}
	upd, err := updater.New(featurestore.NewMemory(), uopts, ms...)
	if err != nil {
		return err
	}
	preq := eval.NewPrequential(upd.Models(), k, every, window)
	preq.MinPositiveRating = uopts.MinPositiveRating
	upd.SetObserver(preq)
	// With a visual model, an item's embedding arrives as an item event just before its
	// first interaction (when it is released): the visual models score it from then on.
	var sent []bool
	var itemOffset int64
	if visual(ms) && ds.FeatureDim > 0 {
		sent = make([]bool, len(ds.Items))
	}
	bar := newBar(int64(len(ds.Interactions)), "prequential")
	for i := range ds.Interactions {
		if it := ds.Interactions[i].Item; sent != nil && !sent[it] {
			sent[it] = true
			if item, ok := eval.ItemEvent(ds, it); ok {
				if err := upd.ApplyItem(&item, updater.Position{Topic: "items", Offset: itemOffset}); err != nil {
					return err
				}
				itemOffset++
			}
		}
		ev := ds.Event(i)
		if err := upd.Apply(ctx, &ev, updater.Position{Topic: "log", Offset: int64(i)}); err != nil {
			return err
		}
		if i%10_000 == 0 {
			bar.Set(i) //nolint:errcheck // display only
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	bar.Finish() //nolint:errcheck // display only
	tbl := report.Table{
		Title: fmt.Sprintf("%s, prequential over %d events in time order, K=%d factors, one in %d new user-item pairs evaluated; cold = item with < %d interactions so far",
			ds.Name, len(ds.Interactions), mf.factors, every, preq.ColdThreshold),
		Command: command,
		Columns: []string{"ranker", fmt.Sprintf("Recall@%d", k), fmt.Sprintf("NDCG@%d", k), "evaluations",
			fmt.Sprintf("cold Recall@%d", k), fmt.Sprintf("cold NDCG@%d", k), "cold evaluations"},
	}
	total, cold := preq.Total(), preq.Cold()
	var series []report.Series
	for r, name := range preq.Rankers() {
		label := name
		if r < len(ms) {
			label = mf.labels()[r]
		}
		tbl.AddRow(label, total[r].Recall(), total[r].NDCG(), total[r].N, cold[r].Recall(), cold[r].NDCG(), cold[r].N)
		s := report.Series{Name: label}
		for w, point := range preq.Curve() {
			s.X = append(s.X, float64((w+1)*window))
			s.Y = append(s.Y, point[r].Recall())
		}
		series = append(series, s)
	}
	base := ds.Name + "-prequential"
	extra := ""
	if out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		png := filepath.Join(out, base+".png")
		title := fmt.Sprintf("Prequential Recall@%d per %d evaluations, %s", k, window, ds.Name)
		if err := report.PlotLines(png, title, "evaluations", fmt.Sprintf("Recall@%d", k), command, series); err != nil {
			return err
		}
		extra = "\n" + imageLink(title, png, results) + "\n"
	}
	return publish(&tbl, out, results, base, "Prequential: "+ds.Name, extra)
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

// addPeerRows appends the rows of a bench/peers CSV (columns library, model, train_seconds,
// auc, recall@K, ndcg@K, users) to tbl, in tbl's columns.
func addPeerRows(tbl *report.Table, path string, cuts []int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 1 {
		return fmt.Errorf("%s: empty", path)
	}
	col := make(map[string]int)
	for i, h := range recs[0] {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"library", "model", "auc", "users", "train_seconds"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("%s: no %q column", path, need)
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	num := func(rec []string, name string) string {
		v := get(rec, name)
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			return report.FormatCell(x)
		}
		return v
	}
	for _, rec := range recs[1:] {
		row := []string{get(rec, "library") + " " + get(rec, "model"), num(rec, "auc")}
		for _, k := range cuts {
			row = append(row, num(rec, fmt.Sprintf("recall@%d", k)), num(rec, fmt.Sprintf("ndcg@%d", k)))
		}
		train := get(rec, "train_seconds")
		if x, err := strconv.ParseFloat(train, 64); err == nil {
			train = report.FormatCell(time.Duration(x * float64(time.Second)))
		}
		row = append(row, get(rec, "users"), train)
		tbl.Rows = append(tbl.Rows, row)
	}
	return nil
}

// writeFeatures writes the item features of ds, when it has any, beside split files:
// features.npy (one row per item that has features) and features_ids.txt (its item ids).
func writeFeatures(dir string, ds *datasets.Dataset) error {
	if ds.FeatureDim == 0 {
		return nil
	}
	m := &datasets.Matrix{Cols: ds.FeatureDim}
	var ids strings.Builder
	for i, f := range ds.Features {
		if f == nil {
			continue
		}
		m.Data = append(m.Data, f...)
		m.Rows++
		ids.WriteString(ds.Items[i] + "\n")
	}
	f, err := os.Create(filepath.Join(dir, "features.npy"))
	if err != nil {
		return err
	}
	if err := datasets.WriteNPY(f, m); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "features_ids.txt"), []byte(ids.String()), 0o644)
}
