// Package events defines visrec's event schema v1: interaction events (keyed by user on
// visrec.events) and item events (keyed by item on visrec.items), their JSON and compact
// binary encodings, and validation. docs/events.md is the user-facing description.
//
// Decoders never panic on any input; every rejection is a *DecodeError whose Reason is a
// short stable token that travels in the dead-letter header.
package events

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Version is the schema version written by encoders and accepted by decoders.
const Version = 1

// Topic names used across visrec.
const (
	TopicEvents     = "visrec.events"
	TopicItems      = "visrec.items"
	TopicDeadLetter = "visrec.deadletter"
)

// Limits applied by the decoders.
const (
	MaxIDBytes       = 256     // user, item and event ids
	MaxMessageBytes  = 1 << 20 // any encoded message
	MaxEmbeddingDim  = 1 << 16
	MaxMetadataBytes = 64 << 10
)

// Type is the kind of an interaction.
type Type uint8

// Interaction types. Their order is also their default implicit confidence order.
const (
	View Type = iota + 1
	Click
	Purchase
	Rating
)

var typeNames = [...]string{View: "view", Click: "click", Purchase: "purchase", Rating: "rating"}

func (t Type) String() string {
	if t >= View && t <= Rating {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType maps a schema name ("view", "click", "purchase", "rating") to its Type.
func ParseType(s string) (Type, bool) {
	for t := View; t <= Rating; t++ {
		if typeNames[t] == s {
			return t, true
		}
	}
	return 0, false
}

// Interaction is one user–item event.
type Interaction struct {
	ID        string  // optional producer-assigned event id
	Type      Type    // view, click, purchase or rating
	User      string  // required; the Kafka key
	Item      string  // required
	Timestamp int64   // Unix milliseconds; required
	Value     float32 // the rating for Type==Rating, optional weight otherwise
	HasValue  bool    // whether Value was given
}

// Item announces an item and its image embedding.
type Item struct {
	Item      string            // required; the Kafka key
	Timestamp int64             // Unix milliseconds; required
	Model     string            // embedding model name, e.g. "mobilenetv2"; required
	Embedding []float32         // required, finite, len == declared dim
	Metadata  map[string]string // optional (title, category, ...)
}

// Rejection reasons, the values of DecodeError.Reason and of the dead-letter header.
const (
	ReasonMalformed   = "malformed"
	ReasonVersion     = "unsupported_version"
	ReasonUnknownType = "unknown_type"
	ReasonMissing     = "missing_field"
	ReasonNonFinite   = "non_finite"
	ReasonOversize    = "oversize"
	ReasonDimension   = "wrong_dimension"
	ReasonBadID       = "bad_id"
	ReasonUnknownID   = "unknown_id"
)

// ErrInvalid is wrapped by every DecodeError, so errors.Is(err, ErrInvalid) tells bad input
// apart from infrastructure failures.
var ErrInvalid = errors.New("invalid event")

// DecodeError says why a message was rejected.
type DecodeError struct {
	Reason string // one of the Reason* constants
	Detail string // human-readable detail
}

func (e *DecodeError) Error() string { return "invalid event: " + e.Reason + ": " + e.Detail }
func (e *DecodeError) Unwrap() error { return ErrInvalid }

func invalid(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the rejection reason of err, or "" when err is not a DecodeError.
func ReasonOf(err error) string {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

// Validate checks the fields of an interaction.
func (e *Interaction) Validate() error {
	if e.Type < View || e.Type > Rating {
		return invalid(ReasonUnknownType, "interaction type %d", e.Type)
	}
	if err := checkID("user", e.User); err != nil {
		return err
	}
	if err := checkID("item", e.Item); err != nil {
		return err
	}
	if len(e.ID) > MaxIDBytes {
		return invalid(ReasonBadID, "event id longer than %d bytes", MaxIDBytes)
	}
	if !utf8.ValidString(e.ID) {
		return invalid(ReasonBadID, "event id is not valid UTF-8")
	}
	if e.Timestamp <= 0 {
		return invalid(ReasonMissing, "timestamp must be positive Unix milliseconds")
	}
	if e.HasValue && !finite(e.Value) {
		return invalid(ReasonNonFinite, "value is %v", e.Value)
	}
	if e.Type == Rating && !e.HasValue {
		return invalid(ReasonMissing, "rating event without value")
	}
	return nil
}

// Validate checks the fields of an item event. dim, when > 0, is the embedding dimension the
// consumer expects.
func (it *Item) Validate(dim int) error {
	if err := checkID("item", it.Item); err != nil {
		return err
	}
	if it.Timestamp <= 0 {
		return invalid(ReasonMissing, "timestamp must be positive Unix milliseconds")
	}
	if it.Model == "" {
		return invalid(ReasonMissing, "embedding model name")
	}
	if len(it.Model) > MaxIDBytes || !utf8.ValidString(it.Model) {
		return invalid(ReasonBadID, "embedding model name longer than %d bytes or not UTF-8", MaxIDBytes)
	}
	if len(it.Embedding) == 0 {
		return invalid(ReasonMissing, "embedding")
	}
	if dim > 0 && len(it.Embedding) != dim {
		return invalid(ReasonDimension, "embedding has %d values, want %d", len(it.Embedding), dim)
	}
	for i, v := range it.Embedding {
		if !finite(v) {
			return invalid(ReasonNonFinite, "embedding[%d] is %v", i, v)
		}
	}
	return nil
}

func checkID(field, id string) error {
	if id == "" {
		return invalid(ReasonMissing, "%s id", field)
	}
	if len(id) > MaxIDBytes {
		return invalid(ReasonBadID, "%s id longer than %d bytes", field, MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] == 0x7f {
			return invalid(ReasonBadID, "%s id contains control byte 0x%02x", field, id[i])
		}
	}
	if !utf8.ValidString(id) {
		return invalid(ReasonBadID, "%s id is not valid UTF-8", field)
	}
	return nil
}

func finite(v float32) bool {
	f := float64(v)
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}
