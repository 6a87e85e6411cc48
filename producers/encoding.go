package producers

import (
	"fmt"
	"strings"

	"github.com/visrec/visrec/events"
)

// Encoding is how an interaction is written as a Kafka message value.
type Encoding int

// Encodings of event schema v1; consumers read both (events.DecodeInteraction).
const (
	EncodingJSON   Encoding = iota // one JSON object, events.Interaction.AppendJSON
	EncodingBinary                 // compact binary, events.Interaction.AppendBinary
)

func (e Encoding) String() string {
	switch e {
	case EncodingJSON:
		return "json"
	case EncodingBinary:
		return "binary"
	}
	return fmt.Sprintf("encoding(%d)", int(e))
}

// ParseEncoding maps "json" or "binary" (case-insensitive) to an Encoding.
func ParseEncoding(s string) (Encoding, error) {
	switch strings.ToLower(s) {
	case "json":
		return EncodingJSON, nil
	case "binary", "bin":
		return EncodingBinary, nil
	}
	return 0, fmt.Errorf("unknown encoding %q (want json or binary)", s)
}

// Append appends ev's encoding to dst.
func (e Encoding) Append(dst []byte, ev *events.Interaction) []byte {
	if e == EncodingBinary {
		return ev.AppendBinary(dst)
	}
	return ev.AppendJSON(dst)
}
