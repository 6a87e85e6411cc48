package producers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/visrec/visrec/events"
)

// ErrSink is wrapped by the error of a replay that failed because the sink refused a
// write (as opposed to a failing source or a cancelled context).
var ErrSink = errors.New("sink write failed")

// DefaultBatchSize is the number of messages per Sink.Write when ReplayOptions.BatchSize
// is 0.
const DefaultBatchSize = 5000

// ReplayOptions configures a Replayer. The zero value replays as fast as possible in JSON
// with batches of DefaultBatchSize, no progress bar and no logging.
type ReplayOptions struct {
	// Encoding of the message values (keys are always the user id).
	Encoding Encoding
	// Rate paces the replay at this many events per second (0: as fast as possible).
	// Event i is due i/Rate seconds after the start, so the rate holds over any interval
	// longer than Linger, without drift.
	Rate float64
	// Warp replays the log's own timestamps sped up by this factor (3600: an hour of log
	// per second): an event is due (ts - first ts) / Warp after the start. 0: off. Rate and
	// Warp are exclusive.
	Warp float64
	// BatchSize is the largest number of messages per Sink.Write; 0 means DefaultBatchSize.
	BatchSize int
	// Linger is the longest a due event waits for batch-mates when pacing; 0 means 5 ms.
	// Unpaced replays send full batches.
	Linger time.Duration
	// Progress, when set, receives a progress bar (use os.Stderr when it is a terminal).
	Progress io.Writer
	// Log, when set, gets a line at the start and the end.
	Log *zap.Logger
}

// DefaultReplayOptions returns the defaults spelled out.
func DefaultReplayOptions() ReplayOptions {
	return ReplayOptions{Encoding: EncodingJSON, BatchSize: DefaultBatchSize, Linger: 5 * time.Millisecond}
}

// Summary describes a finished (or stopped) replay.
type Summary struct {
	Events  int64         // events acknowledged by the sink
	Batches int64         // Sink.Write calls that succeeded
	Bytes   int64         // key and value bytes acknowledged
	Skipped int           // malformed lines the source skipped (LogStream with SkipBad)
	Elapsed time.Duration // from the start of Run to the last write acknowledged
}

// EventsPerSecond is Events / Elapsed.
func (s Summary) EventsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Events) / s.Elapsed.Seconds()
}

func (s Summary) String() string {
	return fmt.Sprintf("%d events (%d bad lines skipped) in %.2f s: %.0f events/s, %d batches, %.1f MB",
		s.Events, s.Skipped, s.Elapsed.Seconds(), s.EventsPerSecond(), s.Batches, float64(s.Bytes)/1e6)
}

// Replayer writes a Source to a Sink: key = user id, value = the encoded event, in source
// order, in batches, paced as configured. A Replayer may run several sources one after
// another but not concurrently.
type Replayer struct {
	sink Sink
	opts ReplayOptions
	log  *zap.Logger
}

// NewReplayer checks opts and returns a Replayer writing to sink.
func NewReplayer(sink Sink, opts ReplayOptions) (*Replayer, error) {
	switch {
	case sink == nil:
		return nil, errors.New("replayer: nil sink")
	case opts.Rate < 0 || math.IsNaN(opts.Rate) || math.IsInf(opts.Rate, 0):
		return nil, fmt.Errorf("replayer: rate %v events/s, want >= 0", opts.Rate)
	case opts.Warp < 0 || math.IsNaN(opts.Warp) || math.IsInf(opts.Warp, 0):
		return nil, fmt.Errorf("replayer: warp factor %v, want >= 0", opts.Warp)
	case opts.Rate > 0 && opts.Warp > 0:
		return nil, errors.New("replayer: rate and warp are exclusive: pick one pacing")
	case opts.BatchSize < 0:
		return nil, fmt.Errorf("replayer: batch size %d, want >= 0", opts.BatchSize)
	case opts.Encoding != EncodingJSON && opts.Encoding != EncodingBinary:
		return nil, fmt.Errorf("replayer: unknown %v", opts.Encoding)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Linger <= 0 {
		opts.Linger = 5 * time.Millisecond
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	return &Replayer{sink: sink, opts: opts, log: log}, nil
}

// batch accumulates encoded messages in one arena that is reused from batch to batch.
type batch struct {
	arena []byte
	ends  []int // per message: key start, value start, value end
	msgs  []kafka.Message
}

func (b *batch) add(enc Encoding, e *events.Interaction) {
	k := len(b.arena)
	b.arena = append(b.arena, e.User...)
	v := len(b.arena)
	b.arena = enc.Append(b.arena, e)
	b.ends = append(b.ends, k, v, len(b.arena))
}

func (b *batch) len() int { return len(b.ends) / 3 }

// messages builds the messages once the arena no longer moves.
func (b *batch) messages() []kafka.Message {
	b.msgs = b.msgs[:0]
	for i := 0; i < len(b.ends); i += 3 {
		k, v, end := b.ends[i], b.ends[i+1], b.ends[i+2]
		b.msgs = append(b.msgs, kafka.Message{Key: b.arena[k:v:v], Value: b.arena[v:end:end]})
	}
	return b.msgs
}

func (b *batch) reset() {
	b.arena = b.arena[:0]
	b.ends = b.ends[:0]
}

// Run replays src until it ends, fails, or ctx is done, and returns what was delivered.
// A cancelled ctx returns an error wrapping ctx.Err(); the batch being assembled is then
// dropped, and the one being written may or may not have landed. The source's error, if
// any, is returned after everything read before it was delivered.
func (r *Replayer) Run(ctx context.Context, src Source) (Summary, error) {
	var sum Summary
	total := int64(-1)
	if s, ok := src.(Sized); ok {
		total = s.Len()
	}
	bar := r.newBar(total)
	r.log.Info("replay starting", zap.Int64("events", total), zap.String("pacing", r.pacing()),
		zap.Stringer("encoding", r.opts.Encoding), zap.Int("batch", r.opts.BatchSize))

	b := &batch{ends: make([]int, 0, 3*r.opts.BatchSize)}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	start := time.Now()
	var batchOpened time.Duration // offset from start when the batch got its first event
	flush := func() error {
		if b.len() == 0 {
			return nil
		}
		msgs := b.messages()
		if err := r.sink.Write(ctx, msgs); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("replay stopped: %w", ctx.Err())
			}
			return fmt.Errorf("%w: %d events: %w", ErrSink, len(msgs), err)
		}
		sum.Events += int64(len(msgs))
		sum.Batches++
		sum.Bytes += int64(len(b.arena))
		if bar != nil {
			bar.Add64(int64(len(msgs))) //nolint:errcheck // the bar's write errors do not matter
		}
		b.reset()
		return nil
	}
	// sleep waits d or until ctx is done.
	sleep := func(d time.Duration) error {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("replay stopped: %w", ctx.Err())
		case <-timer.C:
			return nil
		}
	}
	paced := r.opts.Rate > 0 || r.opts.Warp > 0
	var firstTS int64
	var err error
	for i := int64(0); ; i++ {
		if i&1023 == 0 && ctx.Err() != nil {
			err = fmt.Errorf("replay stopped: %w", ctx.Err())
			break
		}
		e, ok := src.Next()
		if !ok {
			break
		}
		if i == 0 {
			firstTS = e.Timestamp
		}
		if paced {
			due := r.due(i, e.Timestamp-firstTS)
			for err == nil {
				now := time.Since(start)
				if now >= due {
					break
				}
				wake := due
				if b.len() > 0 {
					if now >= batchOpened+r.opts.Linger {
						err = flush()
						continue
					}
					wake = min(wake, batchOpened+r.opts.Linger)
				}
				err = sleep(wake - now)
			}
			if err != nil {
				break
			}
			if b.len() == 0 {
				batchOpened = time.Since(start)
			}
		}
		b.add(r.opts.Encoding, &e)
		if b.len() >= r.opts.BatchSize {
			if err = flush(); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = flush()
	}
	sum.Elapsed = time.Since(start)
	if st, ok := src.(interface{ Stats() LogStats }); ok {
		sum.Skipped = st.Stats().Skipped
	}
	if err == nil {
		if serr := src.Err(); serr != nil {
			err = fmt.Errorf("replay source: %w", serr)
		}
	}
	if bar != nil {
		if err == nil {
			bar.Finish() //nolint:errcheck // cosmetic
		}
		fmt.Fprintln(r.opts.Progress)
	}
	r.log.Info("replay done", zap.Int64("events", sum.Events), zap.Int("skipped", sum.Skipped),
		zap.Duration("elapsed", sum.Elapsed), zap.Float64("events_per_s", sum.EventsPerSecond()), zap.Error(err))
	return sum, err
}

// due is when event i, whose timestamp is dts ms after the first event's, should be sent,
// as an offset from the start.
func (r *Replayer) due(i, dts int64) time.Duration {
	var d float64 // nanoseconds
	switch {
	case r.opts.Rate > 0:
		d = float64(i) / r.opts.Rate * float64(time.Second)
	case r.opts.Warp > 0:
		d = float64(dts) / r.opts.Warp * float64(time.Millisecond)
	}
	return time.Duration(min(d, math.MaxInt64/2))
}

func (r *Replayer) pacing() string {
	switch {
	case r.opts.Rate > 0:
		return fmt.Sprintf("%g events/s", r.opts.Rate)
	case r.opts.Warp > 0:
		return fmt.Sprintf("log time x%g", r.opts.Warp)
	}
	return "as fast as possible"
}

func (r *Replayer) newBar(total int64) *progressbar.ProgressBar {
	if r.opts.Progress == nil {
		return nil
	}
	if total <= 0 {
		total = -1
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(r.opts.Progress),
		progressbar.OptionSetDescription("replay"),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionShowIts(),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetSpinnerChangeInterval(0), // no background goroutine
	)
}
