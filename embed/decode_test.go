package embed

import (
	"bytes"
	"errors"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func pngBytes(t testing.TB) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, randomRGBA(rand.New(rand.NewPCG(5, 6)), 9, 4)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeErrors(t *testing.T) {
	good := pngBytes(t)
	cases := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"text", []byte("movieId,title\n1,Toy Story (1995)\n"), ReasonNotImage},
		{"empty", nil, ReasonNotImage},
		{"truncated png", good[:len(good)/2], ReasonCorrupt},
		{"png header only", good[:40], ReasonCorrupt},
		{"jpeg magic then junk", append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte{0x42}, 100)...), ReasonCorrupt},
		{"gif bomb header", []byte("GIF89a\xff\xff\xff\xff\x00\x00\x00"), ReasonTooLarge},
		{"gif zero width", []byte("GIF89a\x00\x00\x10\x00\x00\x00\x00"), ReasonEmpty},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Decode(bytes.NewReader(tc.data))
			if err == nil {
				t.Fatalf("decoded %T, want an error", img)
			}
			if !errors.Is(err, ErrBadImage) || ReasonOf(err) != tc.reason {
				t.Fatalf("error %v (reason %q), want reason %q wrapping ErrBadImage", err, ReasonOf(err), tc.reason)
			}
		})
	}
	if _, err := Decode(bytes.NewReader(good)); err != nil {
		t.Fatalf("good png: %v", err)
	}
}

func TestDecodeFileErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "notes.jpg")
	if err := os.WriteFile(p, []byte("not a picture"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := DecodeFile(p)
	if ReasonOf(err) != ReasonNotImage || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v: want reason %s naming %s", err, ReasonNotImage, p)
	}
	_, err = DecodeFile(filepath.Join(dir, "missing.jpg"))
	if ReasonOf(err) != ReasonUnreadable || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want reason %s wrapping os.ErrNotExist", err, ReasonUnreadable)
	}
}

// FuzzDecode: Decode and Preprocess never panic, and every error is an *ImageError.
func FuzzDecode(f *testing.F) {
	f.Add(pngBytes(f))
	f.Add([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00"))
	f.Add([]byte{0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43})
	if b, err := os.ReadFile(filepath.Join(postersDir, "1.jpg")); err == nil {
		f.Add(b)
		f.Add(b[:len(b)/3])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(bytes.NewReader(data))
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error %v is not an *ImageError", err)
			}
			return
		}
		if _, err := Preprocess(img); err != nil {
			t.Fatalf("decoded image does not preprocess: %v", err)
		}
	})
}
