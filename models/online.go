// Package models holds visrec's recommendation models. The shallow models learn online
// through Online, one event at a time, on rows that the updater owns and caches; the step
// functions are written by hand, allocation-free, because they run millions of times a second.
package models

import "math/rand/v2"

// Example is one training step's input. The rows alias the updater's cache: Step updates
// them in place. Rows a model does not use are nil.
type Example struct {
	User   []float32 // the user's row, len UserDim
	Item   []float32 // the observed item's row, len ItemDim
	Neg    []float32 // a sampled negative item's row, len ItemDim (when NeedsNegative)
	Global []float32 // the model-wide row, len GlobalDim (nil when GlobalDim is 0)
	Value  float32   // target: the rating (explicit) or 1 (implicit)
	Weight float32   // confidence weight of this event, > 0
}

// Online is a model that learns by online SGD. Implementations are not safe for concurrent
// use; the updater serialises calls. Step and Score must not allocate.
type Online interface {
	// Name is the model's stable name; it prefixes the model's tables in the feature store.
	Name() string
	// UserDim, ItemDim and GlobalDim are the row widths (biases included).
	UserDim() int
	ItemDim() int
	GlobalDim() int
	// NeedsNegative tells the updater to sample a negative item for each step.
	NeedsNegative() bool
	// InitUser fills a fresh user row. Item rows and the global row start at zero: they are
	// shared between updaters and change only by merged deltas, which need a common origin
	// that no updater has to write first. So the user side must break the symmetry.
	InitUser(row []float32, rng *rand.Rand)
	// Step applies one SGD step and returns the example's loss before the step.
	Step(ex *Example) float32
	// Score is the model's preference of user for item (higher is better).
	Score(user, item, global []float32) float32
}
