package featurestore

import (
	"reflect"
	"testing"
)

// FuzzDecodeCall: a redo entry (read back from Redis, where anyone may have written it)
// decodes without panicking, and what decodes survives encodeCall and decodeCall unchanged.
func FuzzDecodeCall(f *testing.F) {
	f.Add(string(encodeCall([]string{"{ns}:v:users", "{ns}:chg:users"}, []any{"hz", "s", "1", "1", "u1", []byte{0, 0, 128, 63}})))
	f.Add(string(encodeCall(nil, nil)))
	f.Add("\x01\x05ab")
	f.Fuzz(func(t *testing.T, s string) {
		keys, args, err := decodeCall(s)
		if err != nil {
			return
		}
		k2, a2, err := decodeCall(string(encodeCall(keys, args)))
		if err != nil || !reflect.DeepEqual(k2, keys) || !reflect.DeepEqual(a2, args) {
			t.Fatalf("%q: decoded %q %q, after a round trip %q %q (%v)", s, keys, args, k2, a2, err)
		}
	})
}
