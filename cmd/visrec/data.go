package main

import (
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/visrec/visrec/datasets"
)

func init() {
	commands["data"] = command{
		summary: "download, inspect and convert data sets (MovieLens, Amazon+VBPR, Cornac UIR, MMRec, logs)",
		run:     runData,
	}
}

const dataUsage = `usage: visrec data download NAME [--dir DIR] [--md5 HEX] [--sha256 HEX] [--base-url URL]
       visrec data list
       visrec data info PATH|posters [--format F] [--vbpr FILE] [--skip-bad]
       visrec data convert IN OUT.jsonl [--format F] [--start-ms MS] [--skip-bad]

download  fetches a public archive (see 'visrec data list'), verifies its checksum and
          unpacks it into DIR/<name>; an interrupted download resumes on the next run.
info      loads a data set and prints users, items, interactions, density, time range
          and feature coverage. PATH is a file or a folder; "posters" is the MovieLens
          posters data (--posters-dir).
convert   writes any supported data set as event JSON lines, which 'visrec replay' reads;
          OUT ending .gz is gzip-compressed, "-" is stdout.

Formats (--format, default auto: detected from the name and first line):
  movielens      ratings.csv, u.data or ratings.dat
  movielens-dir  an unpacked MovieLens archive, with movie metadata
  posters        ml-latest-small with posters and MobileNetV2 features
  csv, jsonl     event logs, as 'visrec replay' reads them
  amazon         Amazon review JSON lines (2014, 2018, 2023 keys; .gz)
  uir            Cornac UIR text: user item [rating [timestamp]]
  mmrec          an MMRec folder (NAME.inter + image_feat.npy, text_feat.npy) or .inter

`

// runData dispatches the data subcommands.
func runData(ctx context.Context, log *zap.Logger, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, dataUsage)
		return errors.New("want a subcommand: download, list, info or convert")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(os.Stderr, dataUsage)
		return flag.ErrHelp
	case "download":
		return runDataDownload(ctx, args[1:])
	case "list":
		return runDataList(args[1:])
	case "info":
		return runDataInfo(args[1:])
	case "convert":
		return runDataConvert(args[1:])
	}
	return fmt.Errorf("unknown subcommand %q: want download, list, info or convert (see visrec data -h)", args[0])
}

// dataFlagSet is a flag set whose usage is dataUsage followed by its own flags.
func dataFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("data "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), dataUsage)
		fmt.Fprintf(fs.Output(), "flags of 'visrec data %s':\n", name)
		fs.PrintDefaults()
	}
	return fs
}

func runDataList(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("visrec data list takes no arguments, got %q", args)
	}
	for _, a := range datasets.Archives() {
		check := "md5 " + a.MD5
		if a.SHA256 != "" {
			check = "sha256 " + a.SHA256
		}
		if !a.Checked {
			check += " (unverified)"
		}
		fmt.Printf("%-16s %s\n%-16s %s%s, %s\n", a.Name, a.About, "", datasets.DefaultBaseURL, a.File, check)
	}
	return nil
}

func runDataDownload(ctx context.Context, args []string) error {
	fs := dataFlagSet("download")
	dir := fs.String("dir", envOr("VISREC_DATA_DIR", "data"), "folder to unpack into (env VISREC_DATA_DIR)")
	md5 := fs.String("md5", "", "expected MD5 of the archive, replacing the registry's")
	sha := fs.String("sha256", "", "expected SHA-256 of the archive, replacing the registry's")
	base := fs.String("base-url", datasets.DefaultBaseURL, "where the archives are (a mirror)")
	keep := fs.Bool("keep-zip", false, "keep the archive after unpacking it")
	progress := fs.String("progress", "auto", "progress bar on stderr: auto (when a terminal), always or never")
	pos, err := replayParseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("want exactly one data set NAME to download, got %d arguments (names: see visrec data list)", len(pos))
	}
	pw, err := replayProgress(*progress)
	if err != nil {
		return err
	}
	res, err := datasets.Download(ctx, pos[0], *dir, datasets.DownloadOptions{
		BaseURL: *base, Progress: pw, MD5: *md5, SHA256: *sha, KeepZip: *keep,
	})
	if err != nil {
		return err
	}
	verified := "no checksum known: NOT verified"
	if len(res.Verified) > 0 {
		verified = "verified " + strings.Join(res.Verified, ", ")
	}
	fmt.Fprintf(os.Stderr, "%s: %s; %d bytes fetched", res.Dir, verified, res.Fetched)
	if res.Resumed > 0 {
		fmt.Fprintf(os.Stderr, " (resumed after %d)", res.Resumed)
	}
	fmt.Fprintf(os.Stderr, "\nnext: visrec data info %s\n", res.Dir)
	return nil
}

// dataLoadFlags are the flags info and convert share.
type dataLoadFlags struct {
	format, postersDir string
	skipBad            bool
	millis, seconds    bool
}

func (f *dataLoadFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.format, "format", "auto", "input format: "+formatList())
	fs.StringVar(&f.postersDir, "posters-dir", envOr("VISREC_POSTERS_DIR", "../shared/data/movielens-posters"), `the folder that PATH "posters" names (env VISREC_POSTERS_DIR)`)
	fs.BoolVar(&f.skipBad, "skip-bad", false, "skip malformed lines (counted, the first few reported) instead of stopping")
	fs.BoolVar(&f.millis, "millis", false, "uir, mmrec: timestamps are Unix milliseconds (default seconds)")
	fs.BoolVar(&f.seconds, "seconds", false, "csv: the ts column holds Unix seconds (default milliseconds)")
}

func formatList() string {
	var s []string
	for _, f := range datasets.Formats() {
		s = append(s, string(f))
	}
	return strings.Join(s, ", ")
}

// load reads path with the flags; skipped lines are counted and the first five printed.
func (f *dataLoadFlags) load(path string) (*datasets.Dataset, datasets.Format, error) {
	if f.millis && f.seconds {
		return nil, "", errors.New("--millis and --seconds are exclusive")
	}
	format, err := datasets.ParseFormat(f.format)
	if err != nil {
		return nil, "", fmt.Errorf("--format: %w", err)
	}
	if path == "posters" {
		if _, err := os.Stat(path); err != nil {
			path = f.postersDir
		}
	}
	if _, err := os.Stat(path); err != nil {
		return nil, "", fmt.Errorf("data set %s: %w", path, err)
	}
	if format == datasets.FormatAuto {
		if format, err = datasets.DetectFormat(path); err != nil {
			return nil, "", fmt.Errorf("%w (or pass --format)", err)
		}
	}
	opts := datasets.LoadOptions{Format: format, Millis: f.millis, Seconds: f.seconds}
	skipped := 0
	if f.skipBad {
		opts.OnBad = func(err error) error {
			if skipped++; skipped <= 5 {
				fmt.Fprintf(os.Stderr, "  skipped %v\n", err)
			}
			return nil
		}
	}
	ds, err := datasets.Load(path, opts)
	if skipped > 0 {
		fmt.Fprintf(os.Stderr, "skipped %d malformed lines\n", skipped)
	}
	return ds, format, err
}

func runDataInfo(args []string) error {
	fs := dataFlagSet("info")
	var lf dataLoadFlags
	lf.register(fs)
	vbpr := fs.String("vbpr", "", "a VBPR binary image-feature file to attach to the items by ASIN (Amazon)")
	dim := fs.Int("dim", datasets.VBPRDim, "--vbpr: feature length")
	pos, err := replayParseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf(`want exactly one PATH (a file, a folder, or "posters"), got %d arguments; see visrec data -h`, len(pos))
	}
	start := time.Now()
	ds, format, err := lf.load(pos[0])
	if err != nil {
		return err
	}
	if *vbpr != "" {
		rep, err := datasets.LoadVBPRFeatures(ds, *vbpr, *dim)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", *vbpr, rep)
	}
	if err := ds.Stats().Write(os.Stdout, ds.Name); err != nil {
		return err
	}
	fmt.Printf("%-18s %s, loaded in %v\n", "format:", format, time.Since(start).Round(time.Millisecond))
	return nil
}

func runDataConvert(args []string) error {
	fs := dataFlagSet("convert")
	var lf dataLoadFlags
	lf.register(fs)
	startMS := fs.Int64("start-ms", 0, "number the events START, START+1, ... (Unix ms) instead of their own timestamps; for sources without any")
	pos, err := replayParseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("want IN and OUT (e.g. visrec data convert ratings.dat events.jsonl), got %d arguments", len(pos))
	}
	if *startMS < 0 {
		return fmt.Errorf("--start-ms %d: want a positive Unix time in milliseconds", *startMS)
	}
	in, out := pos[0], pos[1]
	ds, _, err := lf.load(in)
	if err != nil {
		return err
	}
	n, err := writeJSONLFile(out, ds, datasets.JSONLOptions{StartMillis: *startMS})
	if errors.Is(err, datasets.ErrNoTimestamp) {
		return fmt.Errorf("%w; pass --start-ms to number the events", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %d events of %s to %s\n", n, ds.Name, out)
	return nil
}

// writeJSONLFile writes the events to out ("-": stdout) through a temporary file renamed
// into place, so that a failed conversion leaves no partial output; .gz compresses.
func writeJSONLFile(out string, ds *datasets.Dataset, opts datasets.JSONLOptions) (int, error) {
	if out == "-" {
		return datasets.WriteEventsJSONL(os.Stdout, ds, opts)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("convert: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	var w io.Writer = tmp
	var gz *gzip.Writer
	if strings.HasSuffix(out, ".gz") {
		gz = gzip.NewWriter(tmp)
		w = gz
	}
	n, err := datasets.WriteEventsJSONL(w, ds, opts)
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("convert: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return n, fmt.Errorf("convert: %w", err)
	}
	return n, nil
}
