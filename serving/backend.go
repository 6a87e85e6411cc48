package serving

import (
	"context"

	"github.com/visrec/visrec/ranking"
)

// Backend answers the ranking questions of the API. *ranking.Index implements it; the server
// holds nothing else of the model state. Every method is called concurrently from many
// request goroutines, so an implementation must be safe for concurrent use.
//
// Errors: the methods return (possibly wrapped) ErrUnknownModel, ErrUnknownUser,
// ErrUnknownItem, ErrNoEmbedding, ErrInvalidArgument and ErrNotReady for the cases they name, and ctx.Err() when the request's
// context ends first; the server turns those into 404, 503 and 504 answers, anything else
// into 500.
type Backend interface {
	// Ready reports whether the first full load of the model state has finished.
	Ready() bool
	// Models lists the served model names; the first is the default of requests that name none.
	Models() []string
	// Version advances whenever the served state changes.
	Version() uint64
	// Recommend ranks every item (or only o.Candidates) for user and returns the best k.
	Recommend(ctx context.Context, model, user string, k int, o RecOptions) ([]Scored, error)
	// Scores returns the scores of user for items, in order.
	Scores(ctx context.Context, model, user string, items []string) ([]float32, error)
	// Similar returns the k items nearest to item by "cf" (item vectors) or "image" (embeddings).
	Similar(ctx context.Context, model, item string, k int, by string) ([]Scored, error)
	// Item looks an item up in the catalog.
	Item(id string) (ItemInfo, bool)
	// Popular is the fallback of unknown users: the best k popular and fresh items that are
	// not in exclude.
	Popular(k int, exclude map[string]bool) []Scored
}

// The value types and sentinel errors of the Backend contract are the ranking package's.
type (
	Scored     = ranking.Scored
	RecOptions = ranking.RecOptions
	ItemInfo   = ranking.ItemInfo
)

// The sentinel errors of the Backend contract (see ranking for their meaning).
var (
	ErrUnknownModel    = ranking.ErrUnknownModel
	ErrUnknownUser     = ranking.ErrUnknownUser
	ErrUnknownItem     = ranking.ErrUnknownItem
	ErrNotReady        = ranking.ErrNotReady
	ErrNoEmbedding     = ranking.ErrNoEmbedding     // Similar by "image" of an item without an embedding
	ErrInvalidArgument = ranking.ErrInvalidArgument // a value the backend cannot take (the server checks its limits first)
)

var _ Backend = (*ranking.Index)(nil)
