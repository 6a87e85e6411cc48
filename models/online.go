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
	// ItemFeat and NegFeat are the raw image features of the observed and the negative item,
	// len FeatureDim, for Visual models; nil for an item without features (it counts as all
	// zeros) and always nil for the other models. Step only reads them.
	ItemFeat []float32
	NegFeat  []float32
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

// Visual is an Online model that also learns from the items' image features: the updater
// fills Example.ItemFeat and NegFeat. Score, which has no features to read, is the score of
// an item whose features are all zero; ScoreFeatures is the full score. Like Score,
// ScoreFeatures and FeatureWeights must not allocate, and they only read: they may run
// concurrently with each other.
type Visual interface {
	Online
	// FeatureDim is the length of the feature vectors the model reads.
	FeatureDim() int
	// ScoreFeatures is the preference of user for an item with raw features feat (nil: zeros).
	ScoreFeatures(user, item, global, feat []float32) float32
	// FeatureWeights writes into dst (len FeatureDim) the vector v_u for which
	// ScoreFeatures(user, item, global, f) == Score(user, item, global) + v_u·f for every
	// item and f, up to float32 rounding: ranking N items then costs one v_u per user and
	// one F-long dot product per item.
	FeatureWeights(dst, user, global []float32)
}

// ItemMetadata is implemented by models that keep part of an item event's metadata in the
// item's row (DeepStyle: its category). The updater calls SetItemMetadata with the item's
// cached row when an item event arrives; item rows are shared, so the change reaches the
// store as a merged delta like any other. Step must not change what it sets.
type ItemMetadata interface {
	SetItemMetadata(row []float32, meta map[string]string)
}
