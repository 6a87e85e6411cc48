package embed

import (
	"errors"
	"fmt"
	"image"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Defaults of Options.
const (
	DefaultInputName = "input"
	DefaultBatchSize = 1
	// DefaultModelName is the name item events carry for embeddings of the default model,
	// ../shared/models/mobilenetv2-12-int8-features.onnx pooled over 7×7.
	DefaultModelName = "mobilenetv2-int8"
)

// Options configure an Embedder. The zero value of every field but ModelPath means its
// default.
type Options struct {
	// ModelPath is the ONNX model file; required.
	ModelPath string
	// LibraryPath is libonnxruntime.so; "" means FindLibrary. One process loads one library:
	// the first Embedder's choice holds for all later ones.
	LibraryPath string
	// InputName is the model's image input, float32 [batch, 3, 224, 224]; default "input".
	InputName string
	// OutputName is the output the embedding is read from: a [batch, C, H, W] feature map,
	// averaged over H×W into C values, or a [batch, D] vector, taken as it is. "" picks the
	// model's only 4-D float output ("627" in mobilenetv2-12-int8-features.onnx); a model
	// without one (the plain classifier) must name its output explicitly.
	OutputName string
	// BatchSize is the number of images per inference run; default 1, at which the reference
	// features were computed. Larger batches give bit-identical vectors with ONNX Runtime
	// 1.30.0 on x86-64 (the tests require cosine 0.9999); on a busy two-core machine batch 8
	// and batch 1 ran at the same speed within the noise (BenchmarkEmbed, BenchmarkEmbedFiles).
	// A model with a fixed batch dimension forces it.
	BatchSize int
	// IntraOpThreads is ONNX Runtime's intra-op thread count; 0 is its default (one per
	// physical core).
	IntraOpThreads int
}

// Embedder turns preprocessed images into embeddings with one ONNX Runtime session.
//
// It is safe for concurrent use: ONNX Runtime sessions support concurrent Run calls, every
// call owns its tensors, and Close waits for the calls in flight, after which calls return
// ErrClosed. Close may be called more than once.
type Embedder struct {
	opts   Options
	dim    int  // embedding length
	pooled bool // output is [N, C, H, W], averaged over H×W

	mu      sync.RWMutex // RLock: a run in flight; Lock: Close
	session *ort.DynamicAdvancedSession
}

// New loads the ONNX Runtime library (once per process, see Options.LibraryPath), checks the
// model's input and output against opts and opens a session.
func New(opts Options) (*Embedder, error) {
	if opts.ModelPath == "" {
		return nil, errors.New("embed: no model path")
	}
	if opts.InputName == "" {
		opts.InputName = DefaultInputName
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchSize < 0 || opts.IntraOpThreads < 0 {
		return nil, fmt.Errorf("embed: batch size %d, intra-op threads %d: want positive values", opts.BatchSize, opts.IntraOpThreads)
	}
	if err := initRuntime(opts.LibraryPath); err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	e := &Embedder{opts: opts}
	if err := e.inspect(); err != nil {
		return nil, fmt.Errorf("embed: model %s: %w", opts.ModelPath, err)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("embed: session options: %w", err)
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("embed: intra-op threads: %w", err)
		}
	}
	e.session, err = ort.NewDynamicAdvancedSession(opts.ModelPath, []string{e.opts.InputName}, []string{e.opts.OutputName}, so)
	if err != nil {
		return nil, fmt.Errorf("embed: open session for %s: %w", opts.ModelPath, err)
	}
	return e, nil
}

// inspect reads the model's inputs and outputs, picks the output and derives the dimension.
func (e *Embedder) inspect() error {
	ins, outs, err := ort.GetInputOutputInfo(e.opts.ModelPath)
	if err != nil {
		return fmt.Errorf("read inputs and outputs: %w", err)
	}
	var in *ort.InputOutputInfo
	for i := range ins {
		if ins[i].Name == e.opts.InputName {
			in = &ins[i]
		}
	}
	if in == nil {
		return fmt.Errorf("no input %q (inputs: %v)", e.opts.InputName, infoNames(ins))
	}
	d := in.Dimensions
	if in.DataType != ort.TensorElementDataTypeFloat || len(d) != 4 || d[1] != Channels || d[2] != Size || d[3] != Size {
		return fmt.Errorf("input %q is %v %v, want float32 [batch %d %d %d]", in.Name, in.DataType, d, Channels, Size, Size)
	}
	if d[0] > 0 && int(d[0]) != e.opts.BatchSize {
		e.opts.BatchSize = int(d[0]) // a fixed batch dimension wins
	}
	var out *ort.InputOutputInfo
	for i := range outs {
		o := &outs[i]
		if e.opts.OutputName == o.Name || (e.opts.OutputName == "" && len(o.Dimensions) == 4 && o.DataType == ort.TensorElementDataTypeFloat) {
			if out != nil && e.opts.OutputName == "" {
				return fmt.Errorf("several 4-D outputs (%v): name one in Options.OutputName", infoNames(outs))
			}
			out = o
		}
	}
	if out == nil {
		if e.opts.OutputName == "" {
			return fmt.Errorf("no 4-D feature-map output (outputs: %v): name the output to use in Options.OutputName", infoNames(outs))
		}
		return fmt.Errorf("no output %q (outputs: %v)", e.opts.OutputName, infoNames(outs))
	}
	e.opts.OutputName = out.Name
	od := out.Dimensions
	switch {
	case out.DataType != ort.TensorElementDataTypeFloat:
		return fmt.Errorf("output %q is %v, want float32", out.Name, out.DataType)
	case len(od) == 4 && od[1] > 0:
		e.dim, e.pooled = int(od[1]), true
	case len(od) == 2 && od[1] > 0:
		e.dim = int(od[1])
	default:
		return fmt.Errorf("output %q has shape %v, want [batch C H W] or [batch D] with known C or D", out.Name, od)
	}
	return nil
}

func infoNames(infos []ort.InputOutputInfo) []string {
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = in.Name
	}
	return names
}

// Dim is the length of the embeddings.
func (e *Embedder) Dim() int { return e.dim }

// BatchSize is the number of images per inference run.
func (e *Embedder) BatchSize() int { return e.opts.BatchSize }

// OutputName is the model output the embeddings come from.
func (e *Embedder) OutputName() string { return e.opts.OutputName }

// EmbedImages preprocesses and embeds imgs, BatchSize at a time, and returns one vector per
// image, in order. A bad image fails the whole call (EmbedFiles skips bad files instead).
func (e *Embedder) EmbedImages(imgs []image.Image) ([][]float32, error) {
	out := make([][]float32, 0, len(imgs))
	buf := make([]float32, InputLen*min(len(imgs), e.opts.BatchSize))
	for start := 0; start < len(imgs); start += e.opts.BatchSize {
		n := min(e.opts.BatchSize, len(imgs)-start)
		for i := range n {
			if err := PreprocessInto(buf[i*InputLen:], imgs[start+i]); err != nil {
				return nil, fmt.Errorf("image %d: %w", start+i, err)
			}
		}
		vecs, err := e.Embed(buf[:n*InputLen])
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}

// Embed runs the model once on a batch of preprocessed images, input holding n×InputLen
// values (n ≥ 1; n may exceed BatchSize, which only paces EmbedImages and EmbedFiles), and
// returns n embeddings of Dim values. For a feature-map output each value is the mean of its
// channel's H×W values, summed in float64 and rounded to float32. Embed reads input but does
// not keep it.
func (e *Embedder) Embed(input []float32) ([][]float32, error) {
	if len(input) == 0 || len(input)%InputLen != 0 {
		return nil, fmt.Errorf("embed: input holds %d values, want a positive multiple of %d", len(input), InputLen)
	}
	n := len(input) / InputLen
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.session == nil {
		return nil, ErrClosed
	}
	in, err := ort.NewTensor(ort.NewShape(int64(n), Channels, Size, Size), input)
	if err != nil {
		return nil, fmt.Errorf("embed: input tensor: %w", err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil} // allocated by ONNX Runtime: the shape comes from the run
	if err := e.session.Run([]ort.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("embed: run %s: %w", e.opts.ModelPath, err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("embed: output %q is %T, want a float32 tensor", e.opts.OutputName, outs[0])
	}
	return e.vectors(t.GetData(), t.GetShape(), n)
}

// vectors turns the output data of shape s into n embeddings.
func (e *Embedder) vectors(data []float32, s ort.Shape, n int) ([][]float32, error) {
	per := 1
	if e.pooled {
		if len(s) != 4 || int(s[0]) != n || int(s[1]) != e.dim || s[2]*s[3] <= 0 {
			return nil, fmt.Errorf("embed: output %q has shape %v, want [%d %d H W]", e.opts.OutputName, s, n, e.dim)
		}
		per = int(s[2] * s[3])
	} else if len(s) != 2 || int(s[0]) != n || int(s[1]) != e.dim {
		return nil, fmt.Errorf("embed: output %q has shape %v, want [%d %d]", e.opts.OutputName, s, n, e.dim)
	}
	if len(data) != n*e.dim*per {
		return nil, fmt.Errorf("embed: output %q holds %d values for shape %v", e.opts.OutputName, len(data), s)
	}
	flat := make([]float32, n*e.dim)
	out := make([][]float32, n)
	for i := range out {
		out[i] = flat[i*e.dim : (i+1)*e.dim : (i+1)*e.dim]
		if !e.pooled {
			copy(out[i], data[i*e.dim:])
			continue
		}
		for c := range e.dim {
			var sum float64
			for _, v := range data[(i*e.dim+c)*per : (i*e.dim+c+1)*per] {
				sum += float64(v)
			}
			out[i][c] = float32(sum / float64(per))
		}
	}
	return out, nil
}

// Close releases the session. It waits for runs in flight; later calls return ErrClosed.
// Closing twice is harmless. The process-wide ONNX Runtime environment stays loaded.
func (e *Embedder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.session == nil {
		return nil
	}
	err := e.session.Destroy()
	e.session = nil
	if err != nil {
		return fmt.Errorf("embed: close session: %w", err)
	}
	return nil
}
