package events

import (
	"errors"
	"math"
	"testing"
)

// Fuzz targets for both decoders. Properties, for any input:
//   - the decoder does not panic;
//   - a rejection is a *DecodeError with a known reason that wraps ErrInvalid;
//   - an accepted value is valid and finite, and re-encoded in JSON and in binary it decodes
//     to the same value, bit for bit.
//
// Seeds are the encodings of the round-trip tables plus hand-made edge cases; crashers
// found by `go test -fuzz` are kept under testdata/fuzz/<target>/ and run with every
// `go test`.

var knownReasons = map[string]bool{
	ReasonMalformed: true, ReasonVersion: true, ReasonUnknownType: true, ReasonMissing: true,
	ReasonNonFinite: true, ReasonOversize: true, ReasonDimension: true, ReasonBadID: true,
}

func checkFuzzRejection(t *testing.T, err error) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) || !errors.Is(err, ErrInvalid) || !knownReasons[de.Reason] {
		t.Fatalf("rejection %v is not a DecodeError with a known reason", err)
	}
}

func FuzzDecodeInteraction(f *testing.F) {
	for _, e := range roundTripInteractions() {
		f.Add(e.AppendJSON(nil))
		f.Add(e.AppendBinary(nil))
	}
	for _, s := range []string{
		okJSON, okJSON + "}", jsonWith(`"value":1e39`), jsonWith(`"v":2`), `{"type":"rating","user":"u","item":"i","ts":1}`,
		`{"type":"view","user":"\ud800","item":"i","ts":1}`, `null`, `[]`, "",
	} {
		f.Add([]byte(s))
	}
	f.Add(binInteraction(1, byte(View), 0, 1, nanBits, "u", "i", ""))
	f.Add(binInteraction(1, byte(Rating), 1, 1, nanBits, "u", "i", ""))
	f.Add(binInteraction(1, byte(Click), 0xfe, 1, one, "u\xff", "i", "\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeInteraction(b)
		if err != nil {
			checkFuzzRejection(t, err)
			return
		}
		if verr := e.Validate(); verr != nil {
			t.Fatalf("decoded an invalid event %+v: %v", e, verr)
		}
		if v := float64(e.Value); math.IsNaN(v) || math.IsInf(v, 0) || (!e.HasValue && e.Value != 0) {
			t.Fatalf("decoded value %v (HasValue %v)", e.Value, e.HasValue)
		}
		for name, enc := range map[string][]byte{"json": e.AppendJSON(nil), "binary": e.AppendBinary(nil)} {
			back, err := DecodeInteraction(enc)
			if err != nil {
				t.Fatalf("%s re-encoding of %+v does not decode: %v\n%q", name, e, err, enc)
			}
			if !sameInteraction(back, e) {
				t.Fatalf("%s round trip: %+v became %+v", name, e, back)
			}
		}
	})
}

func FuzzDecodeItem(f *testing.F) {
	for _, it := range roundTripItems() {
		if len(it.Embedding) > 64 { // keep the corpus small; the big cases are table tests
			continue
		}
		f.Add(it.AppendJSON(nil))
		f.Add(it.AppendBinary(nil))
	}
	for _, s := range []string{
		`{"item":"i","ts":1,"model":"m","dim":2,"embedding":[1,2]}`,
		`{"item":"i","ts":1,"model":"m","dim":2,"embedding":[1,1e39]}`,
		`{"item":"i","ts":1,"model":"m","dim":1,"embedding":[1],"meta":{}}`,
		`{"type":"item","v":1,"item":"i","ts":1,"model":"m","dim":1,"embedding":[1],"meta":{"a":"\ud800"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Add(binItem(1, 1, "m", "i", 1, []uint32{nanBits}, 0))
	f.Add(binItem(1, 1, "m", "i", 1, []uint32{one}, 2, "k", "v", "k", "w"))
	f.Add(binItem(1, 1, "m\xff", "i", 1, []uint32{one}, 1, "\xff", ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := DecodeItem(b, 0)
		if err != nil {
			checkFuzzRejection(t, err)
			return
		}
		if verr := it.Validate(len(it.Embedding)); verr != nil {
			t.Fatalf("decoded an invalid item %+v: %v", it, verr)
		}
		for i, v := range it.Embedding {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("embedding[%d] = %v", i, v)
			}
		}
		for name, enc := range map[string][]byte{"json": it.AppendJSON(nil), "binary": it.AppendBinary(nil)} {
			if len(enc) > MaxMessageBytes {
				// Possible only for JSON of a near-maximal binary item (floats print longer
				// than 4 bytes); docs/events.md says to use binary for such items.
				continue
			}
			back, err := DecodeItem(enc, len(it.Embedding))
			if err != nil {
				t.Fatalf("%s re-encoding of %q does not decode: %v", name, it.Item, err)
			}
			if !sameItem(back, it) {
				t.Fatalf("%s round trip of %+v gave %+v", name, it, back)
			}
		}
	})
}
