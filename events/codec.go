package events

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// Binary encodings start with a magic byte that JSON never starts with.
const (
	magicInteraction = 0xB1
	magicItem        = 0xB2
)

// DecodeInteraction decodes and validates one message of visrec.events, in JSON or binary.
func DecodeInteraction(b []byte) (Interaction, error) {
	if len(b) > MaxMessageBytes {
		return Interaction{}, invalid(ReasonOversize, "%d bytes, limit %d", len(b), MaxMessageBytes)
	}
	var e Interaction
	var err error
	if len(b) > 0 && b[0] == magicInteraction {
		e, err = decodeInteractionBinary(b)
	} else {
		e, err = decodeInteractionJSON(b)
	}
	if err != nil {
		return Interaction{}, err
	}
	if err := e.Validate(); err != nil {
		return Interaction{}, err
	}
	return e, nil
}

// DecodeItem decodes and validates one message of visrec.items, in JSON or binary. dim, when
// > 0, is the embedding dimension the consumer expects.
func DecodeItem(b []byte, dim int) (Item, error) {
	if len(b) > MaxMessageBytes {
		return Item{}, invalid(ReasonOversize, "%d bytes, limit %d", len(b), MaxMessageBytes)
	}
	var it Item
	var err error
	if len(b) > 0 && b[0] == magicItem {
		it, err = decodeItemBinary(b)
	} else {
		it, err = decodeItemJSON(b)
	}
	if err != nil {
		return Item{}, err
	}
	if err := it.Validate(dim); err != nil {
		return Item{}, err
	}
	return it, nil
}

type interactionJSON struct {
	V     *int     `json:"v,omitempty"`
	Type  *string  `json:"type"`
	ID    string   `json:"id,omitempty"`
	User  *string  `json:"user"`
	Item  *string  `json:"item"`
	TS    *int64   `json:"ts"`
	Value *float64 `json:"value,omitempty"`
}

func decodeInteractionJSON(b []byte) (Interaction, error) {
	var w interactionJSON
	if err := strictUnmarshal(b, &w); err != nil {
		return Interaction{}, err
	}
	if w.V != nil && *w.V != Version {
		return Interaction{}, invalid(ReasonVersion, "v=%d, this decoder reads v=%d", *w.V, Version)
	}
	switch {
	case w.Type == nil:
		return Interaction{}, invalid(ReasonMissing, "type")
	case w.User == nil:
		return Interaction{}, invalid(ReasonMissing, "user")
	case w.Item == nil:
		return Interaction{}, invalid(ReasonMissing, "item")
	case w.TS == nil:
		return Interaction{}, invalid(ReasonMissing, "ts")
	}
	t, ok := ParseType(*w.Type)
	if !ok {
		return Interaction{}, invalid(ReasonUnknownType, "%q", *w.Type)
	}
	e := Interaction{ID: w.ID, Type: t, User: *w.User, Item: *w.Item, Timestamp: *w.TS}
	if w.Value != nil {
		e.Value, e.HasValue = float32(*w.Value), true
	}
	return e, nil
}

type itemJSON struct {
	V         *int              `json:"v,omitempty"`
	Type      string            `json:"type,omitempty"`
	Item      *string           `json:"item"`
	TS        *int64            `json:"ts"`
	Model     string            `json:"model"`
	Dim       *int              `json:"dim"`
	Embedding []float64         `json:"embedding"`
	Meta      map[string]string `json:"meta,omitempty"`
}

func decodeItemJSON(b []byte) (Item, error) {
	var w itemJSON
	if err := strictUnmarshal(b, &w); err != nil {
		return Item{}, err
	}
	if w.V != nil && *w.V != Version {
		return Item{}, invalid(ReasonVersion, "v=%d, this decoder reads v=%d", *w.V, Version)
	}
	if w.Type != "" && w.Type != "item" {
		return Item{}, invalid(ReasonUnknownType, "%q on the items topic", w.Type)
	}
	switch {
	case w.Item == nil:
		return Item{}, invalid(ReasonMissing, "item")
	case w.TS == nil:
		return Item{}, invalid(ReasonMissing, "ts")
	case w.Dim == nil:
		return Item{}, invalid(ReasonMissing, "dim")
	}
	if len(w.Embedding) > MaxEmbeddingDim {
		return Item{}, invalid(ReasonOversize, "dim %d, limit %d", len(w.Embedding), MaxEmbeddingDim)
	}
	if *w.Dim != len(w.Embedding) {
		return Item{}, invalid(ReasonDimension, "dim=%d but embedding has %d values", *w.Dim, len(w.Embedding))
	}
	if err := checkMeta(w.Meta); err != nil {
		return Item{}, err
	}
	emb := make([]float32, len(w.Embedding))
	for i, v := range w.Embedding {
		emb[i] = float32(v)
	}
	return Item{Item: *w.Item, Timestamp: *w.TS, Model: w.Model, Embedding: emb, Metadata: w.Meta}, nil
}

func checkMeta(m map[string]string) error {
	if len(m) > MaxMetadataBytes/2 { // the binary decoder's limit on pairs
		return invalid(ReasonOversize, "%d metadata pairs", len(m))
	}
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return invalid(ReasonMalformed, "metadata %q is not valid UTF-8", k)
		}
	}
	if n > MaxMetadataBytes {
		return invalid(ReasonOversize, "metadata of %d bytes, limit %d", n, MaxMetadataBytes)
	}
	return nil
}

func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return invalid(ReasonMalformed, "%v", err)
	}
	// Only JSON whitespace may follow. (Decoder.More is not enough: it reports false for a
	// trailing ']' or '}'.)
	if len(bytes.TrimLeft(b[d.InputOffset():], " \t\r\n")) != 0 {
		return invalid(ReasonMalformed, "trailing data after the JSON object")
	}
	return nil
}

// AppendJSON appends e's JSON encoding (one line, no newline) to dst.
func (e *Interaction) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":1,"type":`...)
	dst = appendJSONString(dst, e.Type.String())
	if e.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendJSONString(dst, e.ID)
	}
	dst = append(dst, `,"user":`...)
	dst = appendJSONString(dst, e.User)
	dst = append(dst, `,"item":`...)
	dst = appendJSONString(dst, e.Item)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, e.Timestamp, 10)
	if e.HasValue {
		dst = append(dst, `,"value":`...)
		dst = strconv.AppendFloat(dst, float64(e.Value), 'g', -1, 32)
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. (strconv.AppendQuote writes Go escapes such as
// \x01 and \U000e0001, which are not JSON.) Invalid UTF-8 is written as U+FFFD, as
// encoding/json does; validated events hold none.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

// AppendJSON appends it's JSON encoding (one line, no newline) to dst.
func (it *Item) AppendJSON(dst []byte) []byte {
	w := itemJSON{V: new(int), Type: "item", Item: &it.Item, TS: &it.Timestamp, Model: it.Model, Meta: it.Metadata}
	*w.V = Version
	n := len(it.Embedding)
	w.Dim = &n
	w.Embedding = make([]float64, n)
	for i, v := range it.Embedding {
		w.Embedding[i] = float64(v)
	}
	b, _ := json.Marshal(w) // cannot fail: plain types, finite values checked by Validate
	return append(dst, b...)
}

// AppendBinary appends e's compact binary encoding to dst:
// 0xB1, version, type, flags (bit 0: has value), ts int64 LE, value float32 LE, then user,
// item and id as uvarint-length-prefixed bytes.
func (e *Interaction) AppendBinary(dst []byte) []byte {
	flags := byte(0)
	if e.HasValue {
		flags = 1
	}
	dst = append(dst, magicInteraction, Version, byte(e.Type), flags)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.Timestamp))
	dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(e.Value))
	dst = appendString(dst, e.User)
	dst = appendString(dst, e.Item)
	return appendString(dst, e.ID)
}

// AppendBinary appends it's compact binary encoding to dst:
// 0xB2, version, ts int64 LE, model, item (uvarint-length-prefixed), uvarint dim, dim float32
// LE, uvarint count of metadata pairs, each key and value uvarint-length-prefixed.
func (it *Item) AppendBinary(dst []byte) []byte {
	dst = append(dst, magicItem, Version)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(it.Timestamp))
	dst = appendString(dst, it.Model)
	dst = appendString(dst, it.Item)
	dst = binary.AppendUvarint(dst, uint64(len(it.Embedding)))
	for _, v := range it.Embedding {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
	}
	dst = binary.AppendUvarint(dst, uint64(len(it.Metadata)))
	for k, v := range it.Metadata {
		dst = appendString(dst, k)
		dst = appendString(dst, v)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// reader walks a binary message; the first failure sticks and later reads return zeros.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = invalid(ReasonMalformed, "binary message truncated in %s", what)
	}
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.fail(what)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string(what string, limit int) string {
	n := r.uvarint(what)
	if n > uint64(limit) {
		if r.err == nil {
			r.err = invalid(ReasonOversize, "%s of %d bytes, limit %d", what, n, limit)
		}
		return ""
	}
	return string(r.bytes(int(n), what))
}

func decodeInteractionBinary(b []byte) (Interaction, error) {
	r := reader{b: b}
	h := r.bytes(4, "header")
	ts := r.bytes(8, "ts")
	val := r.bytes(4, "value")
	if r.err != nil {
		return Interaction{}, r.err
	}
	if h[1] != Version {
		return Interaction{}, invalid(ReasonVersion, "binary v=%d, this decoder reads v=%d", h[1], Version)
	}
	e := Interaction{
		Type:      Type(h[2]),
		HasValue:  h[3]&1 != 0,
		Timestamp: int64(binary.LittleEndian.Uint64(ts)),
	}
	if e.HasValue { // without the flag the value field is ignored (it may hold any bits)
		e.Value = math.Float32frombits(binary.LittleEndian.Uint32(val))
	}
	e.User = r.string("user", MaxIDBytes)
	e.Item = r.string("item", MaxIDBytes)
	e.ID = r.string("id", MaxIDBytes)
	if r.err != nil {
		return Interaction{}, r.err
	}
	if len(r.b) != 0 {
		return Interaction{}, invalid(ReasonMalformed, "%d trailing bytes", len(r.b))
	}
	return e, nil
}

func decodeItemBinary(b []byte) (Item, error) {
	r := reader{b: b}
	h := r.bytes(2, "header")
	ts := r.bytes(8, "ts")
	if r.err != nil {
		return Item{}, r.err
	}
	if h[1] != Version {
		return Item{}, invalid(ReasonVersion, "binary v=%d, this decoder reads v=%d", h[1], Version)
	}
	it := Item{Timestamp: int64(binary.LittleEndian.Uint64(ts))}
	it.Model = r.string("model", MaxIDBytes)
	it.Item = r.string("item", MaxIDBytes)
	dim := r.uvarint("dim")
	if dim > MaxEmbeddingDim {
		return Item{}, invalid(ReasonOversize, "dim %d, limit %d", dim, MaxEmbeddingDim)
	}
	raw := r.bytes(int(dim)*4, "embedding")
	if r.err != nil {
		return Item{}, r.err
	}
	it.Embedding = make([]float32, dim)
	for i := range it.Embedding {
		it.Embedding[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	pairs := r.uvarint("metadata count")
	if pairs > MaxMetadataBytes/2 {
		return Item{}, invalid(ReasonOversize, "%d metadata pairs", pairs)
	}
	for i := uint64(0); i < pairs && r.err == nil; i++ {
		k := r.string("metadata key", MaxMetadataBytes)
		v := r.string("metadata value", MaxMetadataBytes)
		if it.Metadata == nil {
			it.Metadata = make(map[string]string)
		}
		it.Metadata[k] = v
	}
	if r.err != nil {
		return Item{}, r.err
	}
	if len(r.b) != 0 {
		return Item{}, invalid(ReasonMalformed, "%d trailing bytes", len(r.b))
	}
	if err := checkMeta(it.Metadata); err != nil {
		return Item{}, err
	}
	return it, nil
}
