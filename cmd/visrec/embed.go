package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/visrec/visrec/embed"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/producers"
)

func init() {
	commands["embed"] = command{
		summary: "embed images with MobileNetV2 (ONNX Runtime) into .f32/.npy files or visrec.items",
		run:     runEmbed,
	}
}

const embedUsage = `usage: visrec embed [flags] DIR|FILE...
       visrec embed --import FEATURES [flags]

Computes a 1280-value embedding per image: MobileNetV2 int8 through ONNX Runtime, the global
average pool of its last feature map, with the exact preprocessing of the reference features
in ../shared/data/movielens-posters/features/. The item id is the file name without its
extension (posters/1234.jpg -> item 1234). A directory stands for the files in it, ordered by
id (numerically for numeric ids). Files that are no image, corrupt or unreadable are skipped,
counted and listed; the run goes on.

With --import, precomputed features are read instead (FILE.f32 + FILE.ids, FILE.npy +
FILE.ids, or a VBPR binary file, .gz transparently) and sent to the same outputs.

Outputs (at least one): --out FILE.f32 (raw little-endian float32 rows + FILE.ids, the
reference layout), --npy FILE.npy (+ FILE.ids), --kafka (one events.Item per image on
visrec.items, keyed by item id, binary encoding).

The ONNX Runtime library comes from $VISREC_ONNXRUNTIME_LIB or .cache/onnxruntime/lib/ (install
it with deploy/onnxruntime.sh).

flags:
`

type embedFlags struct {
	model, lib, output, modelName         string
	out, npy, importPath, importFmt       string
	brokers, topic, progress              string
	batch, threads, importDim, partitions int
	kafka                                 bool
}

func runEmbed(ctx context.Context, log *zap.Logger, args []string) error {
	var f embedFlags
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	fs.StringVar(&f.model, "model", "../shared/models/mobilenetv2-12-int8-features.onnx", "ONNX model file")
	fs.StringVar(&f.lib, "onnxruntime", "", "libonnxruntime.so (default: $VISREC_ONNXRUNTIME_LIB, else .cache/onnxruntime/lib/libonnxruntime.so here or in a parent directory)")
	fs.StringVar(&f.output, "output-name", "", `model output to embed from (default: its only 4-D feature map, "627"; a [N,D] output is taken as it is)`)
	fs.StringVar(&f.modelName, "model-name", embed.DefaultModelName, "embedding model name carried by item events")
	fs.IntVar(&f.batch, "batch", embed.DefaultBatchSize, "images per inference run (the reference features used 1; larger batches give the same vectors)")
	fs.IntVar(&f.threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per physical core)")
	fs.StringVar(&f.out, "out", "", "write raw float32 rows to FILE.f32 and their ids to FILE.ids")
	fs.StringVar(&f.npy, "npy", "", "write a float32 .npy matrix to FILE.npy and its ids to FILE.ids")
	fs.BoolVar(&f.kafka, "kafka", false, "produce one events.Item per image to --topic, keyed by item id")
	fs.StringVar(&f.brokers, "brokers", envOr("VISREC_KAFKA_BROKERS", "127.0.0.1:9092"), "comma-separated Kafka bootstrap brokers (env VISREC_KAFKA_BROKERS)")
	fs.StringVar(&f.topic, "topic", events.TopicItems, "topic for --kafka")
	fs.IntVar(&f.partitions, "partitions", 4, "create the topic with this many partitions if it is missing (0: never create)")
	fs.StringVar(&f.importPath, "import", "", "read precomputed features from FILE (.f32 + .ids, .npy + .ids, or VBPR binary) instead of embedding images")
	fs.StringVar(&f.importFmt, "import-format", "auto", "format of --import: auto (by extension), f32, npy or vbpr")
	fs.IntVar(&f.importDim, "import-dim", 0, "row length of --import (0: from the file; VBPR: 4096)")
	fs.StringVar(&f.progress, "progress", "auto", "progress bar on stderr: auto (when a terminal), always or never")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), embedUsage)
		fs.PrintDefaults()
	}
	pos, err := replayParseArgs(fs, args)
	if err != nil {
		return err
	}
	if f.out == "" && f.npy == "" && !f.kafka {
		return errors.New("no output: give --out FILE.f32, --npy FILE.npy or --kafka")
	}
	if f.importPath != "" && len(pos) > 0 {
		return fmt.Errorf("--import reads features, not images: drop the %d image arguments", len(pos))
	}
	if f.importPath == "" && len(pos) == 0 {
		return errors.New("no images: give a directory or image files (or --import FILE); see visrec embed -h")
	}
	if f.batch < 1 {
		return fmt.Errorf("--batch %d: want at least 1", f.batch)
	}
	showBar, err := embedProgress(f.progress)
	if err != nil {
		return err
	}

	out, err := openItemOutputs(ctx, &f)
	if err != nil {
		return err
	}
	if f.importPath != "" {
		err = embedImport(ctx, &f, out)
	} else {
		err = embedImages(ctx, log, &f, pos, out, showBar)
	}
	if err != nil {
		out.abort()
		return err
	}
	if err := out.close(ctx); err != nil {
		return err
	}
	out.report()
	return nil
}

// embedImages embeds the images named by pos into out and prints a summary.
func embedImages(ctx context.Context, log *zap.Logger, f *embedFlags, pos []string, out *itemOutputs, showBar bool) error {
	paths, err := embed.ListImages(pos)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("no files in %s", strings.Join(pos, " "))
	}
	e, err := embed.New(embed.Options{ModelPath: f.model, LibraryPath: f.lib, OutputName: f.output, BatchSize: f.batch, IntraOpThreads: f.threads})
	if err != nil {
		return err
	}
	defer e.Close()
	log.Debug("embedding", zap.Int("files", len(paths)), zap.String("model", f.model), zap.String("onnxruntime", embed.RuntimeVersion()),
		zap.String("output", e.OutputName()), zap.Int("dim", e.Dim()), zap.Int("batch", e.BatchSize()))

	bar := progressbar.DefaultSilent(int64(len(paths)), "embedding")
	if showBar {
		bar = progressbar.NewOptions64(int64(len(paths)),
			progressbar.OptionSetDescription("embedding"),
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("images"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	const listSkipped = 10
	var skipped []error
	st, err := e.EmbedFiles(ctx, paths, embed.FilesOptions{}, func(r embed.Result) error {
		bar.Add(1) //nolint:errcheck // display only
		if r.Err != nil {
			if len(skipped) < listSkipped {
				skipped = append(skipped, r.Err)
			}
			return nil
		}
		return out.write(ctx, r.ID, r.Vector, map[string]string{"image": filepath.Base(r.Path)})
	})
	bar.Finish() //nolint:errcheck // display only
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "embedded %d of %d images in %.1fs: %.1f images/s (model %s, output %q, dim %d, batch %d, ONNX Runtime %s)\n",
		st.Embedded, st.Files, st.Elapsed.Seconds(), st.PerSecond(), filepath.Base(f.model), e.OutputName(), e.Dim(), e.BatchSize(), embed.RuntimeVersion())
	if n := st.SkippedTotal(); n > 0 {
		fmt.Fprintf(os.Stderr, "skipped %d: %s\n", n, st.SkippedReasons())
		for _, err := range skipped {
			fmt.Fprintf(os.Stderr, "  %v\n", err)
		}
		if n > len(skipped) {
			fmt.Fprintf(os.Stderr, "  ... and %d more\n", n-len(skipped))
		}
	}
	if st.Embedded == 0 {
		return fmt.Errorf("none of the %d files could be embedded", st.Files)
	}
	return nil
}

// embedImport sends precomputed features to out.
func embedImport(ctx context.Context, f *embedFlags, out *itemOutputs) error {
	format := f.importFmt
	if format == "auto" {
		format = embed.FormatAuto
	}
	start := time.Now()
	ids, m, err := embed.ImportFeatures(f.importPath, embed.ImportOptions{Format: format, Dim: f.importDim})
	if err != nil {
		return err
	}
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := out.write(ctx, id, m.Row(i), nil); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "imported %d rows of %d values from %s in %.1fs\n", m.Rows, m.Cols, f.importPath, time.Since(start).Seconds())
	return nil
}

// embedProgress resolves --progress.
func embedProgress(mode string) (bool, error) {
	switch strings.ToLower(mode) {
	case "always", "on", "true":
		return true, nil
	case "never", "off", "false":
		return false, nil
	case "auto":
		return term.IsTerminal(int(os.Stderr.Fd())), nil
	}
	return false, fmt.Errorf("--progress %q: want auto, always or never", mode)
}

// itemOutputs fans each embedding out to the files and the Kafka topic chosen by the flags.
type itemOutputs struct {
	files     []embed.Writer
	fileNames []string
	kafka     *producers.KafkaSink
	topic     string
	model     string
	pending   []kafka.Message
	rows      int
	invalid   int
}

// kafkaBatch is the number of item events per Kafka write.
const kafkaBatch = 64

func openItemOutputs(ctx context.Context, f *embedFlags) (*itemOutputs, error) {
	o := &itemOutputs{model: f.modelName, topic: f.topic}
	if f.out != "" {
		w, err := embed.NewRawWriter(f.out)
		if err != nil {
			return nil, err
		}
		o.files = append(o.files, w)
		o.fileNames = append(o.fileNames, fmt.Sprintf("%s (+ %s)", f.out, embed.IDsPath(f.out)))
	}
	if f.npy != "" {
		o.files = append(o.files, embed.NewNPYWriter(f.npy))
		o.fileNames = append(o.fileNames, fmt.Sprintf("%s (+ %s)", f.npy, embed.IDsPath(f.npy)))
	}
	if f.kafka {
		brokers := replayBrokerList(f.brokers)
		if len(brokers) == 0 {
			o.abort()
			return nil, errors.New("--brokers is empty")
		}
		if f.partitions > 0 {
			tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := producers.EnsureTopic(tctx, brokers, f.topic, f.partitions)
			cancel()
			if err != nil {
				o.abort()
				return nil, fmt.Errorf("%w (is Kafka running at %s? set --brokers or VISREC_KAFKA_BROKERS)", err, f.brokers)
			}
		}
		o.kafka = producers.NewKafkaSink(brokers, f.topic, kafkaBatch)
	}
	return o, nil
}

// write sends one embedding to every output. An embedding that is no valid item event (a
// NaN in imported features, say) is counted and left out of every output.
func (o *itemOutputs) write(ctx context.Context, id string, vec []float32, meta map[string]string) error {
	it := events.Item{Item: id, Timestamp: time.Now().UnixMilli(), Model: o.model, Embedding: vec, Metadata: meta}
	if err := it.Validate(0); err != nil {
		o.invalid++
		if o.invalid <= 10 {
			fmt.Fprintf(os.Stderr, "  left out item %q: %v\n", id, err)
		}
		return nil
	}
	for _, w := range o.files {
		if err := w.Write(id, vec); err != nil {
			return err
		}
	}
	o.rows++
	if o.kafka == nil {
		return nil
	}
	o.pending = append(o.pending, kafka.Message{Key: []byte(id), Value: it.AppendBinary(nil)})
	if len(o.pending) >= kafkaBatch {
		return o.flush(ctx)
	}
	return nil
}

func (o *itemOutputs) flush(ctx context.Context) error {
	if len(o.pending) == 0 {
		return nil
	}
	if err := o.kafka.Write(ctx, o.pending); err != nil {
		return fmt.Errorf("produce to %s: %w", o.topic, err)
	}
	o.pending = o.pending[:0]
	return nil
}

// close completes every output: files appear under their names only now.
func (o *itemOutputs) close(ctx context.Context) error {
	var errs []error
	if o.kafka != nil {
		errs = append(errs, o.flush(ctx), o.kafka.Close())
	}
	for _, w := range o.files {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}

// abort discards partial files; item events already produced stay on the topic.
func (o *itemOutputs) abort() {
	for _, w := range o.files {
		w.Abort()
	}
	if o.kafka != nil {
		o.kafka.Close()
	}
}

func (o *itemOutputs) report() {
	for _, n := range o.fileNames {
		fmt.Fprintf(os.Stderr, "wrote %d rows to %s\n", o.rows, n)
	}
	if o.kafka != nil {
		fmt.Fprintf(os.Stderr, "produced %d item events (model %q) to %s\n", o.rows, o.model, o.topic)
	}
	if o.invalid > 0 {
		fmt.Fprintf(os.Stderr, "left out %d invalid rows\n", o.invalid)
	}
}
