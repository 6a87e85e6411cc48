package events

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

// Round trips and rejections of both encodings, table-driven. The binary messages in the
// rejection tables are built by hand (binInteraction, binItem) from the documented layout,
// not by the encoders, so a wrong encoder cannot hide a wrong decoder.

func roundTripInteractions() []Interaction {
	return []Interaction{
		{Type: View, User: "u1", Item: "i1", Timestamp: 1},
		{Type: Click, User: "u1", Item: "i1", Timestamp: 1700000000000, ID: "e-1"},
		{Type: Purchase, User: "u", Item: "i", Timestamp: math.MaxInt64, Value: 2.5, HasValue: true},
		{Type: Rating, User: "42", Item: "318", Timestamp: 964982703000, Value: 4.5, HasValue: true},
		{Type: Rating, User: "u", Item: "i", Timestamp: 5, Value: float32(math.Copysign(0, -1)), HasValue: true},
		{Type: View, User: "u", Item: "i", Timestamp: 5, Value: math.MaxFloat32, HasValue: true},
		{Type: View, User: "u", Item: "i", Timestamp: 5, Value: -math.SmallestNonzeroFloat32, HasValue: true},
		{Type: Click, User: "u", Item: "i", Timestamp: 5, Value: 0.1, HasValue: true},
		{Type: View, User: `quote"back\slash/<&>`, Item: "ünïcödé ✓ 😀 \U000e0001", Timestamp: 7},
		{Type: View, User: "u", Item: "i", Timestamp: 7, ID: "tab\tnewline\n\x00\x7f"}, // event ids may hold control bytes
		{Type: View, User: strings.Repeat("u", MaxIDBytes), Item: strings.Repeat("é", MaxIDBytes/2), Timestamp: 7, ID: strings.Repeat("x", MaxIDBytes)},
	}
}

func roundTripItems() []Item {
	return []Item{
		{Item: "i1", Timestamp: 1, Model: "mobilenetv2", Embedding: []float32{0.5}},
		{Item: "i2", Timestamp: 1700000000000, Model: "m", Embedding: []float32{1, -2, 0.1, math.MaxFloat32, -math.SmallestNonzeroFloat32, float32(math.Copysign(0, -1))},
			Metadata: map[string]string{"title": "Toy Story (1995)", "category": "Animation|Children", "": "empty key", "quote": `"\<>&`}},
		{Item: "ünï ✓", Timestamp: 9, Model: "clip/ViT-B-32", Embedding: make([]float32, 1280), Metadata: map[string]string{"k": ""}},
		{Item: "big", Timestamp: 9, Model: "m", Embedding: make([]float32, MaxEmbeddingDim)},
	}
}

func sameInteraction(a, b Interaction) bool {
	return a.ID == b.ID && a.Type == b.Type && a.User == b.User && a.Item == b.Item &&
		a.Timestamp == b.Timestamp && a.HasValue == b.HasValue &&
		math.Float32bits(a.Value) == math.Float32bits(b.Value)
}

// sameItem compares bit for bit; a nil and an empty metadata map are the same.
func sameItem(a, b Item) bool {
	if a.Item != b.Item || a.Timestamp != b.Timestamp || a.Model != b.Model ||
		len(a.Embedding) != len(b.Embedding) || len(a.Metadata) != len(b.Metadata) {
		return false
	}
	for i := range a.Embedding {
		if math.Float32bits(a.Embedding[i]) != math.Float32bits(b.Embedding[i]) {
			return false
		}
	}
	for k, v := range a.Metadata {
		if w, ok := b.Metadata[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestInteractionRoundTrip(t *testing.T) {
	for _, e := range roundTripInteractions() {
		if err := e.Validate(); err != nil {
			t.Fatalf("%+v: %v", e, err)
		}
		js, bin := e.AppendJSON([]byte("prefix")), e.AppendBinary([]byte("prefix"))
		if !bytes.HasPrefix(js, []byte("prefix")) || !bytes.HasPrefix(bin, []byte("prefix")) {
			t.Fatalf("Append* does not append")
		}
		js, bin = js[6:], bin[6:]
		if !json.Valid(js) {
			t.Errorf("%+v: AppendJSON wrote invalid JSON %s", e, js)
		}
		if bin[0] != magicInteraction {
			t.Errorf("binary starts with 0x%02x", bin[0])
		}
		for name, b := range map[string][]byte{"json": js, "binary": bin} {
			got, err := DecodeInteraction(b)
			if err != nil {
				t.Errorf("%s %+v: %v", name, e, err)
			} else if !sameInteraction(got, e) {
				t.Errorf("%s round trip: %+v became %+v", name, e, got)
			}
		}
	}
}

func TestItemRoundTrip(t *testing.T) {
	for _, it := range roundTripItems() {
		if err := it.Validate(len(it.Embedding)); err != nil {
			t.Fatalf("%s: %v", it.Item, err)
		}
		js, bin := it.AppendJSON(nil), it.AppendBinary(nil)
		if !json.Valid(js) {
			t.Errorf("%s: AppendJSON wrote invalid JSON", it.Item)
		}
		if bin[0] != magicItem {
			t.Errorf("binary starts with 0x%02x", bin[0])
		}
		for name, b := range map[string][]byte{"json": js, "binary": bin} {
			for _, dim := range []int{0, len(it.Embedding)} {
				got, err := DecodeItem(b, dim)
				if err != nil {
					t.Errorf("%s %s dim=%d: %v", name, it.Item, dim, err)
				} else if !sameItem(got, it) {
					t.Errorf("%s round trip of %s differs", name, it.Item)
				}
			}
		}
	}
}

// TestGoldenEncodings pins the wire formats that docs/events.md describes.
func TestGoldenEncodings(t *testing.T) {
	e := Interaction{Type: Rating, ID: "e1", User: "u1", Item: "i1", Timestamp: 1700000000000, Value: 4.5, HasValue: true}
	if got, want := string(e.AppendJSON(nil)), `{"v":1,"type":"rating","id":"e1","user":"u1","item":"i1","ts":1700000000000,"value":4.5}`; got != want {
		t.Errorf("interaction JSON\n got %s\nwant %s", got, want)
	}
	want := binInteraction(1, byte(Rating), 1, 1700000000000, math.Float32bits(4.5), "u1", "i1", "e1")
	if got := e.AppendBinary(nil); !bytes.Equal(got, want) {
		t.Errorf("interaction binary\n got % x\nwant % x", got, want)
	}

	it := Item{Item: "i1", Timestamp: 1700000000000, Model: "m", Embedding: []float32{0.5, -1}, Metadata: map[string]string{"title": "T"}}
	if got, want := string(it.AppendJSON(nil)), `{"v":1,"type":"item","item":"i1","ts":1700000000000,"model":"m","dim":2,"embedding":[0.5,-1],"meta":{"title":"T"}}`; got != want {
		t.Errorf("item JSON\n got %s\nwant %s", got, want)
	}
	wantItem := binItem(1, 1700000000000, "m", "i1", 2, []uint32{math.Float32bits(0.5), math.Float32bits(-1)}, 1, "title", "T")
	if got := it.AppendBinary(nil); !bytes.Equal(got, wantItem) {
		t.Errorf("item binary\n got % x\nwant % x", got, wantItem)
	}
}

// binInteraction builds a binary interaction from the documented layout.
func binInteraction(version, typ, flags byte, ts int64, valueBits uint32, user, item, id string) []byte {
	b := []byte{magicInteraction, version, typ, flags}
	b = binary.LittleEndian.AppendUint64(b, uint64(ts))
	b = binary.LittleEndian.AppendUint32(b, valueBits)
	for _, s := range []string{user, item, id} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// binItem builds a binary item event from the documented layout; meta holds key, value
// pairs and pairs is the count written (which may lie).
func binItem(version byte, ts int64, model, item string, dim uint64, emb []uint32, pairs uint64, meta ...string) []byte {
	b := []byte{magicItem, version}
	b = binary.LittleEndian.AppendUint64(b, uint64(ts))
	for _, s := range []string{model, item} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, dim)
	for _, v := range emb {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.AppendUvarint(b, pairs)
	for _, s := range meta {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

const okJSON = `{"type":"click","user":"u","item":"i","ts":1}`

func jsonWith(field string) string {
	return `{"type":"click","user":"u","item":"i","ts":1,` + field + `}`
}

var (
	nanBits   = uint32(0x7fc00001)
	posInf    = math.Float32bits(float32(math.Inf(1)))
	one       = math.Float32bits(1)
	longID    = strings.Repeat("x", MaxIDBytes+1)
	validBin  = binInteraction(1, byte(Click), 0, 1, 0, "u", "i", "")
	validItem = binItem(1, 1, "m", "i", 2, []uint32{one, one}, 0)
)

func TestDecodeInteractionRejects(t *testing.T) {
	oversize := okJSON + strings.Repeat(" ", MaxMessageBytes)
	cases := []struct {
		name, in, reason string
	}{
		{"empty", ``, ReasonMalformed},
		{"not json", `hello`, ReasonMalformed},
		{"unterminated", `{"type":"click"`, ReasonMalformed},
		{"array", `[]`, ReasonMalformed},
		{"ts string", `{"type":"click","user":"u","item":"i","ts":"1"}`, ReasonMalformed},
		{"ts fraction", `{"type":"click","user":"u","item":"i","ts":1.5}`, ReasonMalformed},
		{"user number", `{"type":"click","user":1,"item":"i","ts":1}`, ReasonMalformed},
		{"value string", jsonWith(`"value":"1"`), ReasonMalformed},
		{"value beyond float64", jsonWith(`"value":1e400`), ReasonMalformed},
		{"NaN literal", jsonWith(`"value":NaN`), ReasonMalformed},
		{"trailing garbage", okJSON + ` x`, ReasonMalformed},
		{"trailing object", okJSON + okJSON, ReasonMalformed},
		{"trailing brace", okJSON + `}`, ReasonMalformed},
		{"trailing bracket", okJSON + "\n]", ReasonMalformed},
		{"version 2", jsonWith(`"v":2`), ReasonVersion},
		{"version 0", jsonWith(`"v":0`), ReasonVersion},
		{"unknown type", `{"type":"like","user":"u","item":"i","ts":1}`, ReasonUnknownType},
		{"empty type", `{"type":"","user":"u","item":"i","ts":1}`, ReasonUnknownType},
		{"type on items topic", `{"type":"item","user":"u","item":"i","ts":1}`, ReasonUnknownType},
		{"null", `null`, ReasonMissing},
		{"empty object", `{}`, ReasonMissing},
		{"missing type", `{"user":"u","item":"i","ts":1}`, ReasonMissing},
		{"missing user", `{"type":"click","item":"i","ts":1}`, ReasonMissing},
		{"missing item", `{"type":"click","user":"u","ts":1}`, ReasonMissing},
		{"missing ts", `{"type":"click","user":"u","item":"i"}`, ReasonMissing},
		{"null user", `{"type":"click","user":null,"item":"i","ts":1}`, ReasonMissing},
		{"empty user", `{"type":"click","user":"","item":"i","ts":1}`, ReasonMissing},
		{"empty item", `{"type":"click","user":"u","item":"","ts":1}`, ReasonMissing},
		{"zero ts", `{"type":"click","user":"u","item":"i","ts":0}`, ReasonMissing},
		{"negative ts", `{"type":"click","user":"u","item":"i","ts":-5}`, ReasonMissing},
		{"rating without value", `{"type":"rating","user":"u","item":"i","ts":1}`, ReasonMissing},
		{"value overflows float32", jsonWith(`"value":1e39`), ReasonNonFinite},
		{"value overflows negative", jsonWith(`"value":-3.5e38`), ReasonNonFinite},
		{"oversize", oversize, ReasonOversize},
		{"user control byte", `{"type":"click","user":"a\u0001b","item":"i","ts":1}`, ReasonBadID},
		{"item DEL", `{"type":"click","user":"u","item":"a\u007fb","ts":1}`, ReasonBadID},
		{"user newline", `{"type":"click","user":"a\nb","item":"i","ts":1}`, ReasonBadID},
		{"user too long", `{"type":"click","user":"` + longID + `","item":"i","ts":1}`, ReasonBadID},
		{"item too long", `{"type":"click","user":"u","item":"` + longID + `","ts":1}`, ReasonBadID},
		{"event id too long", jsonWith(`"id":"` + longID + `"`), ReasonBadID},

		{"binary truncated header", string(validBin[:3]), ReasonMalformed},
		{"binary trailing bytes", string(append(append([]byte(nil), validBin...), 0)), ReasonMalformed},
		{"binary uvarint overflow", string(append(append([]byte(nil), validBin[:16]...), bytes.Repeat([]byte{0xff}, 11)...)), ReasonMalformed},
		{"binary version 2", string(binInteraction(2, byte(Click), 0, 1, 0, "u", "i", "")), ReasonVersion},
		{"binary version 0", string(binInteraction(0, byte(Click), 0, 1, 0, "u", "i", "")), ReasonVersion},
		{"binary type 0", string(binInteraction(1, 0, 0, 1, 0, "u", "i", "")), ReasonUnknownType},
		{"binary type 5", string(binInteraction(1, 5, 0, 1, 0, "u", "i", "")), ReasonUnknownType},
		{"binary missing user", string(binInteraction(1, byte(Click), 0, 1, 0, "", "i", "")), ReasonMissing},
		{"binary zero ts", string(binInteraction(1, byte(Click), 0, 0, 0, "u", "i", "")), ReasonMissing},
		{"binary negative ts", string(binInteraction(1, byte(Click), 0, -1, 0, "u", "i", "")), ReasonMissing},
		{"binary rating without value", string(binInteraction(1, byte(Rating), 0, 1, one, "u", "i", "")), ReasonMissing},
		{"binary NaN value", string(binInteraction(1, byte(Rating), 1, 1, nanBits, "u", "i", "")), ReasonNonFinite},
		{"binary Inf value", string(binInteraction(1, byte(View), 1, 1, posInf, "u", "i", "")), ReasonNonFinite},
		{"binary user too long", string(binInteraction(1, byte(Click), 0, 1, 0, longID, "i", "")), ReasonOversize},
		{"binary id too long", string(binInteraction(1, byte(Click), 0, 1, 0, "u", "i", longID)), ReasonOversize},
		{"binary user control byte", string(binInteraction(1, byte(Click), 0, 1, 0, "a\x00", "i", "")), ReasonBadID},
		{"binary user not UTF-8", string(binInteraction(1, byte(Click), 0, 1, 0, "a\xff", "i", "")), ReasonBadID},
		{"binary id not UTF-8", string(binInteraction(1, byte(Click), 0, 1, 0, "u", "i", "\xc3")), ReasonBadID},
		{"binary oversize", string(binInteraction(1, byte(Click), 0, 1, 0, "u", "i", strings.Repeat("x", MaxMessageBytes))), ReasonOversize},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := DecodeInteraction([]byte(c.in))
			checkRejection(t, err, c.reason)
			if e != (Interaction{}) {
				t.Errorf("rejected decode returned %+v", e)
			}
		})
	}
}

// TestDecodeInteractionTruncated: every proper prefix of a valid binary message is malformed.
func TestDecodeInteractionTruncated(t *testing.T) {
	full := binInteraction(1, byte(Rating), 1, 1700000000000, one, "user", "item", "id")
	if _, err := DecodeInteraction(full); err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(full); n++ {
		_, err := DecodeInteraction(full[:n])
		checkRejection(t, err, ReasonMalformed)
	}
}

// TestDecodeInteractionIgnoresValueWithoutFlag: without flag bit 0 the value field is not
// read, whatever it holds (it once leaked NaN into a valid event).
func TestDecodeInteractionIgnoresValueWithoutFlag(t *testing.T) {
	for _, bits := range []uint32{nanBits, posInf, one} {
		e, err := DecodeInteraction(binInteraction(1, byte(View), 0, 1, bits, "u", "i", ""))
		if err != nil {
			t.Fatal(err)
		}
		if e.HasValue || e.Value != 0 {
			t.Errorf("value bits %08x: got HasValue=%v Value=%v, want none", bits, e.HasValue, e.Value)
		}
	}
}

func TestDecodeItemRejects(t *testing.T) {
	item := func(fields string) string {
		return `{"item":"i","ts":1,"model":"m","dim":2,"embedding":[1,2]` + fields + `}`
	}
	bigMeta := `,"meta":{"k":"` + strings.Repeat("x", MaxMetadataBytes) + `"}`
	bigEmb := `{"item":"i","ts":1,"model":"m","dim":70000,"embedding":[` + strings.Repeat("0,", 69999) + `0]}`
	cases := []struct {
		name, in string
		dim      int
		reason   string
	}{
		{"empty", ``, 0, ReasonMalformed},
		{"not json", `{"item":`, 0, ReasonMalformed},
		{"embedding strings", `{"item":"i","ts":1,"model":"m","dim":1,"embedding":["1"]}`, 0, ReasonMalformed},
		{"meta not strings", item(`,"meta":{"a":1}`), 0, ReasonMalformed},
		{"trailing data", item(``) + `]`, 0, ReasonMalformed},
		{"interaction binary on items topic", string(validBin), 0, ReasonMalformed},
		{"version 2", item(`,"v":2`), 0, ReasonVersion},
		{"interaction type", item(`,"type":"view"`), 0, ReasonUnknownType},
		{"missing item", `{"ts":1,"model":"m","dim":1,"embedding":[1]}`, 0, ReasonMissing},
		{"missing ts", `{"item":"i","model":"m","dim":1,"embedding":[1]}`, 0, ReasonMissing},
		{"missing dim", `{"item":"i","ts":1,"model":"m","embedding":[1]}`, 0, ReasonMissing},
		{"missing model", `{"item":"i","ts":1,"dim":1,"embedding":[1]}`, 0, ReasonMissing},
		{"missing embedding", `{"item":"i","ts":1,"model":"m","dim":0}`, 0, ReasonMissing},
		{"empty embedding", `{"item":"i","ts":1,"model":"m","dim":0,"embedding":[]}`, 0, ReasonMissing},
		{"empty item", `{"item":"","ts":1,"model":"m","dim":1,"embedding":[1]}`, 0, ReasonMissing},
		{"zero ts", `{"item":"i","ts":0,"model":"m","dim":1,"embedding":[1]}`, 0, ReasonMissing},
		{"embedding overflows float32", `{"item":"i","ts":1,"model":"m","dim":2,"embedding":[1,1e39]}`, 0, ReasonNonFinite},
		{"dim disagrees with embedding", `{"item":"i","ts":1,"model":"m","dim":3,"embedding":[1,2]}`, 0, ReasonDimension},
		{"consumer expects another dim", item(``), 3, ReasonDimension},
		{"metadata too large", item(bigMeta), 0, ReasonOversize},
		{"embedding too long", bigEmb, 0, ReasonOversize},
		{"message too large", item(``) + strings.Repeat(" ", MaxMessageBytes), 0, ReasonOversize},
		{"item control byte", `{"item":"a\u0000","ts":1,"model":"m","dim":1,"embedding":[1]}`, 0, ReasonBadID},
		{"item too long", `{"item":"` + longID + `","ts":1,"model":"m","dim":1,"embedding":[1]}`, 0, ReasonBadID},
		{"model too long", `{"item":"i","ts":1,"model":"` + longID + `","dim":1,"embedding":[1]}`, 0, ReasonBadID},

		{"binary truncated", string(validItem[:5]), 0, ReasonMalformed},
		{"binary trailing bytes", string(append(append([]byte(nil), validItem...), 0)), 0, ReasonMalformed},
		{"binary metadata count lies", string(binItem(1, 1, "m", "i", 1, []uint32{one}, 2, "k", "v")), 0, ReasonMalformed},
		{"binary metadata not UTF-8", string(binItem(1, 1, "m", "i", 1, []uint32{one}, 1, "k", "\xff")), 0, ReasonMalformed},
		{"binary version 2", string(binItem(2, 1, "m", "i", 1, []uint32{one}, 0)), 0, ReasonVersion},
		{"binary missing item", string(binItem(1, 1, "m", "", 1, []uint32{one}, 0)), 0, ReasonMissing},
		{"binary missing model", string(binItem(1, 1, "", "i", 1, []uint32{one}, 0)), 0, ReasonMissing},
		{"binary zero dim", string(binItem(1, 1, "m", "i", 0, nil, 0)), 0, ReasonMissing},
		{"binary zero ts", string(binItem(1, 0, "m", "i", 1, []uint32{one}, 0)), 0, ReasonMissing},
		{"binary NaN", string(binItem(1, 1, "m", "i", 2, []uint32{one, nanBits}, 0)), 0, ReasonNonFinite},
		{"binary Inf", string(binItem(1, 1, "m", "i", 1, []uint32{posInf}, 0)), 0, ReasonNonFinite},
		{"binary consumer expects another dim", string(validItem), 3, ReasonDimension},
		{"binary dim too large", string(binItem(1, 1, "m", "i", MaxEmbeddingDim+1, nil, 0)), 0, ReasonOversize},
		{"binary dim huge", string(binItem(1, 1, "m", "i", math.MaxUint64, nil, 0)), 0, ReasonOversize},
		{"binary too many metadata pairs", string(binItem(1, 1, "m", "i", 1, []uint32{one}, MaxMetadataBytes/2+1)), 0, ReasonOversize},
		{"binary metadata too large", string(binItem(1, 1, "m", "i", 1, []uint32{one}, 2, "a", strings.Repeat("x", MaxMetadataBytes/2), "b", strings.Repeat("y", MaxMetadataBytes/2))), 0, ReasonOversize},
		{"binary model too long", string(binItem(1, 1, longID, "i", 1, []uint32{one}, 0)), 0, ReasonOversize},
		{"binary item control byte", string(binItem(1, 1, "m", "\x1b[31m", 1, []uint32{one}, 0)), 0, ReasonBadID},
		{"binary item not UTF-8", string(binItem(1, 1, "m", "\xfe", 1, []uint32{one}, 0)), 0, ReasonBadID},
		{"binary model not UTF-8", string(binItem(1, 1, "\xfe", "i", 1, []uint32{one}, 0)), 0, ReasonBadID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			it, err := DecodeItem([]byte(c.in), c.dim)
			checkRejection(t, err, c.reason)
			if it.Item != "" || it.Embedding != nil || it.Metadata != nil {
				t.Errorf("rejected decode returned %+v", it)
			}
		})
	}
}

func TestDecodeItemTruncated(t *testing.T) {
	full := binItem(1, 1, "m", "i", 2, []uint32{one, one}, 1, "k", "v")
	if _, err := DecodeItem(full, 2); err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(full); n++ {
		_, err := DecodeItem(full[:n], 0)
		checkRejection(t, err, ReasonMalformed)
	}
}

// TestJSONAcceptsWhitespace: surrounding JSON whitespace (kcat lines, pretty printing) is fine.
func TestJSONAcceptsWhitespace(t *testing.T) {
	for _, s := range []string{" " + okJSON, okJSON + "\n", okJSON + " \t\r\n", "{\n  \"type\": \"click\",\n  \"user\": \"u\",\n  \"item\": \"i\",\n  \"ts\": 1\n}\n"} {
		if _, err := DecodeInteraction([]byte(s)); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestReasonOf(t *testing.T) {
	if r := ReasonOf(errors.New("io")); r != "" {
		t.Errorf("ReasonOf(plain error) = %q", r)
	}
	if r := ReasonOf(nil); r != "" {
		t.Errorf("ReasonOf(nil) = %q", r)
	}
	_, err := DecodeInteraction([]byte("x"))
	wrapped := errors.Join(errors.New("context"), err)
	if ReasonOf(wrapped) != ReasonMalformed || !errors.Is(wrapped, ErrInvalid) {
		t.Errorf("wrapped DecodeError lost its reason: %v", wrapped)
	}
}

func TestTypeNames(t *testing.T) {
	for ty := View; ty <= Rating; ty++ {
		back, ok := ParseType(ty.String())
		if !ok || back != ty {
			t.Errorf("ParseType(%q) = %v, %v", ty.String(), back, ok)
		}
	}
	if _, ok := ParseType("View"); ok {
		t.Error("type names are case-sensitive")
	}
	if s := Type(9).String(); s != "type(9)" {
		t.Errorf("Type(9).String() = %q", s)
	}
}

func checkRejection(t *testing.T, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want rejection %q", reason)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	var de *DecodeError
	if !errors.As(err, &de) || de.Detail == "" {
		t.Errorf("error %v is not a *DecodeError with a detail", err)
	}
	if got := ReasonOf(err); got != reason {
		t.Errorf("reason %q (%v), want %q", got, err, reason)
	}
}
