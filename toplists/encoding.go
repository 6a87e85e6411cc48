package toplists

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A list is stored as a Redis string (key ListKey) holding one JSON document: its write
// time in Unix milliseconds and its items, best first, each with the model's score:
//
//	{"at":1732752000123,"items":[{"item":"i42","score":0.9312},{"item":"i7","score":0.8807}]}
//
// One GET reads a list and the time it was written, together. A string written whole by
// MSET (with the other lists of its batch) costs Redis a fraction of what changing a sorted
// set in place does (ZREM, ZADD and a write-time hash in MULTI/EXEC): a new item enters
// thousands of lists at once, and that cost was most of its delay (docs/benchmarks.md).

// Entry is one item of a stored list.
type Entry struct {
	Item  string  `json:"item"`
	Score float32 `json:"score"`
}

// Stored is a list as Redis holds it.
type Stored struct {
	Written time.Time // when the materializer wrote it (millisecond precision)
	Items   []Entry   // best first
}

// AppendList appends the document of a list written at written with items (best first)
// to dst.
func AppendList(dst []byte, written time.Time, items []Entry) []byte {
	return appendList(dst, written, items, func(e Entry) (string, float32) { return e.Item, e.Score })
}

// appendList is AppendList for any item type: the materializer encodes its own entries.
func appendList[E any](dst []byte, written time.Time, items []E, get func(E) (string, float32)) []byte {
	dst = append(dst, `{"at":`...)
	dst = strconv.AppendInt(dst, written.UnixMilli(), 10)
	dst = append(dst, `,"items":[`...)
	for i, e := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		item, score := get(e)
		dst = append(dst, `{"item":`...)
		dst = appendJSONString(dst, item)
		dst = append(dst, `,"score":`...)
		// JSON has no NaN or infinities; a model's scores are finite, but one bad score
		// must not make a user's whole list unreadable.
		switch s := float64(score); {
		case math.IsNaN(s) || math.IsInf(s, -1):
			score = -math.MaxFloat32
		case math.IsInf(s, 1):
			score = math.MaxFloat32
		}
		dst = strconv.AppendFloat(dst, float64(score), 'g', -1, 32) // the shortest exact float32
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// appendJSONString appends s as a JSON string: as is when it needs no escaping (item ids
// nearly always), else as encoding/json writes it.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// DecodeList decodes a stored list's document; a document without a write time or an item
// without an id is an error.
func DecodeList(doc []byte) (Stored, error) {
	var d struct {
		At    *int64  `json:"at"`
		Items []Entry `json:"items"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return Stored{}, fmt.Errorf("toplists: list document: %w", err)
	}
	if d.At == nil {
		return Stored{}, errors.New(`toplists: list document has no "at" (write time)`)
	}
	for i, e := range d.Items {
		if e.Item == "" {
			return Stored{}, fmt.Errorf("toplists: list document: item %d has no id", i)
		}
	}
	return Stored{Written: time.UnixMilli(*d.At), Items: d.Items}, nil
}

// ReadList reads the list at key as a client does: one GET, then DecodeList. A missing key
// is an empty list (no items, zero Written), not an error; a failed read or a document that
// does not decode is.
func ReadList(ctx context.Context, c redis.Cmdable, key string) (Stored, error) {
	doc, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Stored{}, nil
	}
	if err != nil {
		return Stored{}, fmt.Errorf("toplists: read %s: %w", key, err)
	}
	l, err := DecodeList(doc)
	if err != nil {
		return Stored{}, fmt.Errorf("%s: %w", key, err)
	}
	return l, nil
}
