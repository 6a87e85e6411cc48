// Package consumers reads visrec.events and visrec.items as a Kafka consumer group, decodes
// and validates each message, dead-letters the bad ones and drives an updater.Updater.
//
// Offsets are not committed to Kafka: they live in the feature store, in the same
// transaction as the state they produced (DESIGN.md, Effectively once). At the start of
// every group generation the consumer reloads the updater and seeks each assigned partition
// to its stored offset; at its end it flushes. The group only assigns partitions.
package consumers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/updater"
)

// Dead-letter headers.
const (
	HeaderReason = "visrec-reason" // one of events.Reason* or ReasonKeyMismatch
	HeaderError  = "visrec-error"  // human-readable detail
	HeaderSource = "visrec-source" // topic/partition/offset of the original message
)

// ReasonKeyMismatch: an interaction whose Kafka key is not its user (or an item event whose
// key is not its item) would break the one-writer-per-user rule, so it is rejected.
const ReasonKeyMismatch = "key_mismatch"

// Options configure a Consumer. DefaultOptions gives the defaults.
type Options struct {
	Brokers         []string
	Group           string
	EventsTopic     string
	ItemsTopic      string
	DeadLetterTopic string
	// EmbeddingDim is the expected embedding length of item events; 0 accepts any.
	EmbeddingDim int
	// MaxMessageBytes: longer messages are dead-lettered as oversize (at most
	// events.MaxMessageBytes).
	MaxMessageBytes int
	// BatchSize is the most messages applied between two flush checks.
	BatchSize int
	// FlushTimeout bounds the final flush when a generation ends.
	FlushTimeout time.Duration
	// SessionTimeout and HeartbeatInterval of the group membership.
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	// Dialer for all connections (nil: kafka-go's default).
	Dialer *kafka.Dialer
}

// DefaultOptions returns options for brokers with visrec's topic names and group
// "visrec-updater".
func DefaultOptions(brokers ...string) Options {
	return Options{
		Brokers:           brokers,
		Group:             "visrec-updater",
		EventsTopic:       events.TopicEvents,
		ItemsTopic:        events.TopicItems,
		DeadLetterTopic:   events.TopicDeadLetter,
		MaxMessageBytes:   events.MaxMessageBytes,
		BatchSize:         1024,
		FlushTimeout:      30 * time.Second,
		SessionTimeout:    10 * time.Second,
		HeartbeatInterval: time.Second,
	}
}

// Consumer drives one Updater from Kafka. Run it once; it is not reusable.
type Consumer struct {
	opts    Options
	upd     *updater.Updater
	log     *zap.Logger
	metrics *Metrics
	dlq     *kafka.Writer

	dlqTransport *kafka.Transport

	committed atomic.Int64 // messages whose offsets are in the store, this process
}

// New returns a Consumer. metrics may be nil.
func New(opts Options, upd *updater.Updater, log *zap.Logger, metrics *Metrics) (*Consumer, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("consumers: no broker address")
	}
	if opts.Group == "" || opts.EventsTopic == "" || opts.DeadLetterTopic == "" {
		return nil, errors.New("consumers: group, events topic and dead-letter topic are required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1024
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	c := &Consumer{opts: opts, upd: upd, log: log, metrics: metrics}
	if opts.ItemsTopic != "" {
		// Item events get small flushes of their own when the models allow (see
		// updater.SeparateItemFlushes), so that a new item never waits for a flush of
		// interactions.
		upd.SeparateItemFlushes(opts.ItemsTopic)
	}
	// A transport of its own: closing the writer leaves a shared transport's connections
	// (and their goroutines) open.
	c.dlqTransport = &kafka.Transport{ClientID: "visrec-deadletter"}
	if opts.Dialer != nil {
		c.dlqTransport.Dial, c.dlqTransport.TLS, c.dlqTransport.SASL = opts.Dialer.DialFunc, opts.Dialer.TLS, opts.Dialer.SASLMechanism
	}
	c.dlq = &kafka.Writer{
		Addr:         kafka.TCP(opts.Brokers...),
		Topic:        opts.DeadLetterTopic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		Transport:    c.dlqTransport,
	}
	return c, nil
}

// Committed returns how many messages this process has applied or dead-lettered and
// committed to the store.
func (c *Consumer) Committed() int64 { return c.committed.Load() }

func (c *Consumer) topics() []string {
	if c.opts.ItemsTopic == "" {
		return []string{c.opts.EventsTopic}
	}
	return []string{c.opts.EventsTopic, c.opts.ItemsTopic}
}

// Run consumes until ctx is cancelled (then it flushes and returns ctx's error) or a
// failure that a restart must handle (the store or Kafka unreachable): what was flushed is
// safe, and a restarted consumer resumes from it.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.dlqTransport.CloseIdleConnections()
	defer c.dlq.Close()
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.opts.Group,
		Brokers:           c.opts.Brokers,
		Dialer:            c.opts.Dialer,
		Topics:            c.topics(),
		SessionTimeout:    c.opts.SessionTimeout,
		HeartbeatInterval: c.opts.HeartbeatInterval,
		RebalanceTimeout:  c.opts.FlushTimeout + 5*time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
	})
	if err != nil {
		return fmt.Errorf("consumers: join group %s: %w", c.opts.Group, err)
	}
	defer group.Close()
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Rebalances and coordinator moves surface here; the group retries the join.
			c.log.Warn("joining the group", zap.Error(err))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if err := c.runGeneration(ctx, gen); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// record is one fetched message, decoded in the fetching goroutine.
type record struct {
	pos  updater.Position
	msg  kafka.Message
	ev   events.Interaction
	item *events.Item
	err  error // bad input: dead-letter it
}

func (c *Consumer) runGeneration(ctx context.Context, gen *kafka.Generation) error {
	if err := c.upd.Load(ctx, c.topics()...); err != nil {
		return fmt.Errorf("consumers: load state: %w", err)
	}
	// Item events have a channel of their own, which process drains first: a new item must
	// not wait behind a backlog of interactions to become a candidate (cold start).
	in := make(chan record, 4*c.opts.BatchSize)
	items := make(chan record, 1024)
	n := 0
	for topic, parts := range gen.Assignments {
		out := in
		if topic == c.opts.ItemsTopic {
			out = items
		}
		for _, p := range parts {
			start := c.upd.Offset(topic, p.ID)
			if start == featurestore.NoOffset {
				start = kafka.FirstOffset
			}
			n++
			gen.Start(func(gctx context.Context) { c.fetch(gctx, topic, p.ID, start, out) })
		}
	}
	c.log.Info("generation started", zap.Int32("generation", gen.ID), zap.Int("partitions", n))
	done := make(chan error, 1)
	gen.Start(func(gctx context.Context) { done <- c.process(ctx, gctx, in, items) })
	err := <-done
	switch {
	case errors.Is(err, featurestore.ErrFenced):
		// Another updater moved a partition's offset, or a snapshot installation moved a
		// model's epoch (updater.EpochTopic). process has returned, which ends the
		// generation (kafka-go ends it when any function it started returns): Run joins the
		// next one, which Loads the updater again and seeks every assigned partition to
		// updater.Offset, the lowest of the base and lagging models' offsets.
		c.metrics.Fenced.Inc()
		c.log.Warn("fenced: a partition's offset or a model's epoch moved; rejoining to reload", zap.Error(err))
		return nil
	case err != nil && ctx.Err() == nil:
		return err
	}
	return nil
}

// fetch reads one partition from start and sends decoded records to in until gctx ends.
func (c *Consumer) fetch(gctx context.Context, topic string, partition int, start int64, in chan<- record) {
	// MinBytes 1: the broker answers a fetch as soon as a message is appended, so MaxWait
	// only bounds an empty poll. kafka-go asks the broker to wait MaxWait*3/4 and gives up on
	// the connection at MaxWait; an answer later than that (a broker GC pause or a busy
	// CPU) costs a reconnect after a back-off of at least 100 ms that grows with every
	// reconnect of the reader. 500 ms leaves a 125 ms margin (50 ms left 12.5 ms: dozens of
	// reconnects a minute under load, docs/benchmarks.md "Kafka delivery tail"); a closing
	// reader waits for its poll, so this also bounds how long fetch takes to return.
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.opts.Brokers,
		Dialer:    c.opts.Dialer,
		Topic:     topic,
		Partition: partition,
		MinBytes:  1,
		MaxBytes:  16 << 20,
		MaxWait:   500 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		c.log.Error("seek", zap.String("topic", topic), zap.Int("partition", partition), zap.Error(err))
		return
	}
	for {
		m, err := r.FetchMessage(gctx)
		if err != nil {
			if gctx.Err() == nil {
				c.log.Error("fetch", zap.String("topic", topic), zap.Int("partition", partition), zap.Error(err))
			}
			return
		}
		rec := c.decode(m)
		select {
		case in <- rec:
		case <-gctx.Done():
			return
		}
	}
}

func (c *Consumer) decode(m kafka.Message) record {
	rec := record{pos: updater.Position{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}}
	if max := c.opts.MaxMessageBytes; max > 0 && len(m.Value) > max {
		rec.err = &events.DecodeError{Reason: events.ReasonOversize, Detail: fmt.Sprintf("%d bytes, limit %d", len(m.Value), max)}
		rec.msg = m
		return rec
	}
	if m.Topic == c.opts.ItemsTopic {
		it, err := events.DecodeItem(m.Value, c.opts.EmbeddingDim)
		switch {
		case err != nil:
			rec.err = err
		case string(m.Key) != it.Item:
			rec.err = keyMismatch("item", m.Key, it.Item)
		default:
			rec.item = &it
		}
	} else {
		ev, err := events.DecodeInteraction(m.Value)
		switch {
		case err != nil:
			rec.err = err
		case string(m.Key) != ev.User:
			rec.err = keyMismatch("user", m.Key, ev.User)
		default:
			rec.ev = ev
		}
	}
	if rec.err != nil || rec.item != nil {
		rec.msg = m // kept for a dead letter; interactions rarely need it and are many
	}
	return rec
}

func keyMismatch(field string, key []byte, id string) error {
	return &events.DecodeError{Reason: ReasonKeyMismatch,
		Detail: fmt.Sprintf("message key %q is not the %s %q", truncate(string(key), 64), field, truncate(id, 64))}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// pumpEvery is how many records of a batch are applied between two looks for item events.
const pumpEvery = 32

// flushLane is one kind of flush (of interactions, or of the item lane's events) with at
// most one in flight.
type flushLane struct {
	build    func() *updater.PendingFlush // StartFlush or StartItemFlush
	due      func(time.Time) bool         // FlushDue or ItemFlushDue
	inflight *updater.PendingFlush
	started  time.Time
	done     chan error
}

// process applies records in arrival order, item events (items) ahead of waiting
// interactions (in), and flushes by the updater's policy. A flush commits on its own
// goroutine while the next events are applied (Redis merges while this process computes);
// at most one flush of interactions and one item flush are in flight (the latter only with
// an item lane: updater.SeparateItemFlushes). process returns when the generation (gctx)
// or the run (ctx) ends, after a final flush, or on a store failure. Its return ends the
// generation.
func (c *Consumer) process(ctx, gctx context.Context, in, items <-chan record) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	batch := make([]record, 0, c.opts.BatchSize)
	evs := make([]events.Interaction, 0, c.opts.BatchSize)
	var dead []kafka.Message
	lanes := [2]*flushLane{
		{build: c.upd.StartItemFlush, due: c.upd.ItemFlushDue, done: make(chan error, 1)},
		{build: c.upd.StartFlush, due: c.upd.FlushDue, done: make(chan error, 1)},
	}

	finish := func(l *flushLane, err error) error {
		f := l.inflight
		l.inflight = nil
		if err := c.upd.FinishFlush(f, err); err != nil {
			return err
		}
		c.metrics.FlushSeconds.Observe(time.Since(l.started).Seconds())
		c.committed.Add(int64(f.Events()))
		return nil
	}
	// start begins a flush of l; dead letters go out first, before the offsets that cover
	// them (at least once).
	start := func(fctx context.Context, l *flushLane) error {
		if len(dead) > 0 {
			if err := c.dlq.WriteMessages(fctx, dead...); err != nil {
				return fmt.Errorf("consumers: write dead letters: %w", err)
			}
			dead = dead[:0]
		}
		l.inflight, l.started = l.build(), time.Now()
		if l.inflight == nil {
			return nil
		}
		// The commit outlives a cancelled run: a shutdown waits for it rather than abandon it.
		go func(f *updater.PendingFlush) {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(fctx), c.opts.FlushTimeout)
			defer cancel()
			l.done <- f.Commit(cctx)
		}(l.inflight)
		return nil
	}
	finalFlush := func() error {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.FlushTimeout)
		defer cancel()
		for _, l := range lanes {
			if l.inflight != nil {
				if err := finish(l, <-l.done); err != nil {
					return err
				}
			}
		}
		for _, l := range lanes {
			if err := start(fctx, l); err != nil {
				return err
			}
			if l.inflight != nil {
				if err := finish(l, <-l.done); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// applyOne applies one record, keeping a dead letter for bad input; err is a store
	// failure, after which process stops without flushing the rest (a restart replays from
	// the stored offsets).
	applyOne := func(r *record) error {
		m, isDead, err := c.apply(gctx, r)
		if isDead {
			dead = append(dead, m)
		}
		return err
	}
	// pumpItems applies the item events waiting now, in their order, and starts a due item
	// flush, so that a new item waits neither behind a backlog of interactions nor for the
	// rest of a batch of them (the relative order of the two topics is free). Item events
	// are applied here only, never from a batch: a later one applied ahead of an earlier one
	// would make the earlier look replayed.
	pumpItems := func() error {
		for {
			select {
			case err := <-lanes[0].done:
				if err := finish(lanes[0], err); err != nil {
					return err
				}
				continue
			case r := <-items:
				if err := applyOne(&r); err != nil {
					return err
				}
				continue
			default:
			}
			break
		}
		if l := lanes[0]; l.inflight == nil && l.due(time.Now()) {
			return start(ctx, l)
		}
		return nil
	}
	for {
		batch = batch[:0]
		select {
		case <-gctx.Done():
			return finalFlush()
		case <-ctx.Done():
			return finalFlush()
		case err := <-lanes[0].done:
			if err := finish(lanes[0], err); err != nil {
				return err
			}
		case err := <-lanes[1].done:
			if err := finish(lanes[1], err); err != nil {
				return err
			}
		case <-tick.C:
		case r := <-items:
			if err := applyOne(&r); err != nil {
				return err
			}
		case r := <-in:
			batch = append(batch, r)
		}
		if err := pumpItems(); err != nil { // item events first
			return err
		}
		if len(batch) > 0 { // then interactions up to a batch
		drain:
			for len(batch) < cap(batch) {
				select {
				case r := <-in:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			evs = evs[:0]
			for i := range batch {
				if batch[i].err == nil {
					evs = append(evs, batch[i].ev)
				}
			}
			if err := c.upd.Prefetch(gctx, evs); err != nil {
				if gctx.Err() != nil {
					return finalFlush()
				}
				return err
			}
			for i := range batch {
				if i%pumpEvery == pumpEvery-1 {
					if err := pumpItems(); err != nil {
						return err
					}
				}
				if err := applyOne(&batch[i]); err != nil {
					return err
				}
			}
		}
		now := time.Now()
		for _, l := range lanes {
			if l.inflight == nil && l.due(now) {
				if err := start(ctx, l); err != nil {
					return err
				}
			}
		}
	}
}

// apply hands one record to the updater. Bad input comes back as a dead letter m; err is a
// store failure, after which the record counts as not applied.
func (c *Consumer) apply(ctx context.Context, r *record) (m kafka.Message, dead bool, err error) {
	if r.err == nil {
		if r.item != nil {
			r.err = c.upd.ApplyItem(r.item, r.pos)
		} else if err := c.upd.Apply(ctx, &r.ev, r.pos); err != nil {
			return kafka.Message{}, false, err
		}
	}
	if r.err == nil {
		c.metrics.Applied.WithLabelValues(r.pos.Topic).Inc()
		return kafka.Message{}, false, nil
	}
	reason := events.ReasonOf(r.err)
	c.metrics.DeadLetters.WithLabelValues(reason).Inc()
	c.upd.Skip(r.pos)
	return kafka.Message{
		Key:   r.msg.Key,
		Value: r.msg.Value,
		Headers: []kafka.Header{
			{Key: HeaderReason, Value: []byte(reason)},
			{Key: HeaderError, Value: []byte(r.err.Error())},
			{Key: HeaderSource, Value: []byte(r.pos.Topic + "/" + strconv.Itoa(r.pos.Partition) + "/" + strconv.FormatInt(r.pos.Offset, 10))},
		},
	}, true, nil
}
