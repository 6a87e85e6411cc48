package snapshots

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

// InstallOptions configure Install.
type InstallOptions struct {
	// Topics are the real topics the model's updaters consume (events, and items for the
	// visual models): the model's own offsets are set on each.
	Topics []string
	// Chunk is the number of rows per commit (default 2000): a commit is one Redis script,
	// which blocks other clients while it runs.
	Chunk int
	// AfterCommit, when set, is called after each commit of rows (tests interleave updater
	// flushes there).
	AfterCommit func(commit int)
}

// InstallResult says what Install did.
type InstallResult struct {
	Epoch   int64                    // the model's epoch after the installation (even)
	Covered map[string]map[int]int64 // topic → partition → the model's own next offset
	// Assumed lists the topics whose offsets the snapshot did not record: it was taken to
	// cover the base offsets at the installation's last commit (no replay).
	Assumed []string
	Written int // rows set
	Deleted int // user rows deleted (not in the snapshot)
	Zeroed  int // item rows set to zero (not in the snapshot)
	Commits int
}

// Install makes snap (an online model's snapshot: tables users, items and, for models with
// one, global, every row with its id, as updater.Snapshot writes them) the state of its
// model in store, and rebases the model's updaters onto it (docs/snapshots.md):
//
//  1. The model's epoch (updater.EpochTopic) becomes odd: every updater's next flush is
//     fenced (it carries the old epoch), and an updater that loads meanwhile keeps the
//     model frozen: it writes none of its rows and does not advance its offsets. The
//     other models go on. Commits that updaters staged before the freeze and apply in
//     parts are finished then (featurestore's Recover), before any row of the snapshot.
//  2. In commits of Chunk rows: the snapshot's user, item and global rows are set
//     (SetVector: nobody else writes them now, so no delta is needed, and the values are
//     exact); stored user rows that the snapshot lacks are deleted (an updater starts the
//     user afresh, as after the snapshot), stored item rows it lacks are set to zeros (an
//     item the snapshot never saw starts at zero). Each commit fences on the odd epoch, so
//     a concurrent installation stops this one.
//  3. The last commit makes the epoch even again and sets the model's own offsets
//     (updater.ModelTopic, fenced on their previous values) to the offsets the snapshot
//     covers, 0 for a partition (of the base or an earlier installation) it does not record. A snapshot without offsets of a topic
//     is taken to cover the base offsets of that topic at this commit, which fences on
//     them (so none moved meanwhile: retried).
//
// Updaters fenced at step 3 reload and replay, for this model only, the events between its
// offsets and their base offsets: the model's state is the snapshot plus every later event
// exactly once. An installation that dies midway leaves the model frozen; installing again
// (the same or another version) finishes the job.
func Install(ctx context.Context, store featurestore.Store, snap models.Snapshot, opts InstallOptions) (InstallResult, error) {
	var res InstallResult
	model := snap.Model
	if model == "" {
		return res, errors.New("snapshots: install: the snapshot names no model")
	}
	if len(opts.Topics) == 0 {
		return res, errors.New("snapshots: install: no topic")
	}
	if opts.Chunk <= 0 {
		opts.Chunk = 2000
	}
	tables := map[string]*models.Table{}
	for i := range snap.Tables {
		tb := &snap.Tables[i]
		switch tb.Name {
		case "users", "items", "global":
		default:
			return res, fmt.Errorf("snapshots: install %s: table %q is not an online model's (users, items, global)", model, tb.Name)
		}
		if len(tb.IDs) != tb.Rows || len(tb.Data) != tb.Rows*tb.Cols || tb.Cols <= 0 {
			return res, fmt.Errorf("snapshots: install %s: table %s is %d×%d with %d ids and %d values", model, tb.Name, tb.Rows, tb.Cols, len(tb.IDs), len(tb.Data))
		}
		tables[tb.Name] = tb
	}
	if tables["users"] == nil || tables["items"] == nil {
		return res, fmt.Errorf("snapshots: install %s: the snapshot lacks the users or items table (a batch model's snapshot?)", model)
	}
	snapOffs, err := OffsetsOf(snap)
	if err != nil {
		return res, err
	}

	// 1. Freeze.
	epochTopic := updater.EpochTopic(model)
	var odd int64
	for try := 0; ; try++ {
		offs, err := store.Offsets(ctx, epochTopic)
		if err != nil {
			return res, fmt.Errorf("snapshots: install %s: %w", model, err)
		}
		cur, ok := offs[0]
		if !ok {
			cur = featurestore.NoOffset
		}
		odd = cur + 1
		if cur >= 0 && cur%2 == 1 {
			odd = cur + 2 // a dead installation's: fence it out too
		}
		if cur < 0 {
			odd = 1
		}
		tx := store.Begin()
		tx.SetOffset(epochTopic, 0, cur, odd)
		if _, err = tx.Commit(ctx); err == nil {
			break
		}
		if !errors.Is(err, featurestore.ErrFenced) || try == 4 {
			return res, fmt.Errorf("snapshots: install %s: freeze: %w", model, err)
		}
	}
	res.Commits++
	// Updater commits staged before the freeze may still be applying in parts: finish them,
	// so that none of their rows lands over the snapshot's.
	if err := store.Recover(ctx); err != nil {
		return res, fmt.Errorf("snapshots: install %s: %w", model, err)
	}

	// The model's own offsets are stable from here: an updater writes them only in a flush
	// fenced on an even epoch.
	prev := map[string]map[int]int64{}
	for _, topic := range opts.Topics {
		if prev[topic], err = store.Offsets(ctx, updater.ModelTopic(topic, model)); err != nil {
			return res, fmt.Errorf("snapshots: install %s: %w", model, err)
		}
	}

	// 2. Rows. Each commit fences on the odd epoch, so that a concurrent installation (which
	// moved it on) stops this one before their rows mix.
	var tx featurestore.Tx
	n := 0
	begin := func() {
		tx, n = store.Begin(), 0
		tx.SetOffset(epochTopic, 0, odd, odd)
	}
	begin()
	flush := func(force bool) error {
		if n == 0 || (!force && n < opts.Chunk) {
			return nil
		}
		if _, err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("snapshots: install %s: rows: %w", model, err)
		}
		res.Commits++
		if opts.AfterCommit != nil {
			opts.AfterCommit(res.Commits)
		}
		begin()
		return nil
	}
	for _, name := range []string{"users", "items", "global"} {
		tb := tables[name]
		if tb == nil {
			continue
		}
		table := model + ":" + name
		have := make(map[string]struct{}, tb.Rows)
		for r, id := range tb.IDs {
			have[id] = struct{}{}
			tx.SetVector(table, id, tb.Data[r*tb.Cols:(r+1)*tb.Cols])
			n++
			res.Written++
			if err := flush(false); err != nil {
				return res, err
			}
		}
		if name == "global" {
			continue
		}
		var extra []string
		if err := store.ScanVectors(ctx, table, func(id string, _ []float32) error {
			if _, ok := have[id]; !ok {
				extra = append(extra, id)
			}
			return nil
		}); err != nil {
			return res, fmt.Errorf("snapshots: install %s: %w", model, err)
		}
		slices.Sort(extra)
		zero := make([]float32, tb.Cols)
		for _, id := range extra {
			if name == "users" {
				tx.DeleteVector(table, id)
				res.Deleted++
			} else {
				tx.SetVector(table, id, zero)
				res.Zeroed++
			}
			n++
			if err := flush(false); err != nil {
				return res, err
			}
		}
	}
	if err := flush(true); err != nil {
		return res, err
	}
	tx.Rollback() // the fence-only Tx that begin left

	// 3. Unfreeze with the covered offsets.
	for try := 0; ; try++ {
		res.Covered, res.Assumed = map[string]map[int]int64{}, nil
		tx := store.Begin()
		tx.SetOffset(epochTopic, 0, odd, odd+1)
		for _, topic := range opts.Topics {
			base, err := store.Offsets(ctx, topic)
			if err != nil {
				return res, fmt.Errorf("snapshots: install %s: %w", model, err)
			}
			covered := map[int]int64{}
			for p := range prev[topic] {
				covered[p] = 0 // an older installation's partition that nothing below covers
			}
			if so, ok := snapOffs[topic]; ok {
				for p := range base {
					covered[p] = 0 // a partition the snapshot does not record: it covers none of it
				}
				for p, o := range so {
					covered[p] = o
				}
			} else {
				if len(base) > 0 {
					res.Assumed = append(res.Assumed, topic)
				}
				for p, o := range base {
					tx.SetOffset(topic, p, o, o) // fence: the base must not move before this commit
					covered[p] = o
				}
			}
			for p, o := range covered {
				was, ok := prev[topic][p]
				if !ok {
					was = featurestore.NoOffset
				}
				tx.SetOffset(updater.ModelTopic(topic, model), p, was, o)
			}
			res.Covered[topic] = covered
		}
		_, err := tx.Commit(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, featurestore.ErrFenced) || len(res.Assumed) == 0 || try == 9 {
			return res, fmt.Errorf("snapshots: install %s: last commit: %w", model, err)
		}
		// A base offset moved between the read and the commit: read again.
	}
	res.Commits++
	res.Epoch = odd + 1
	return res, nil
}
