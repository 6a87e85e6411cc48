package datasets

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Fuzz targets for the decoders not covered next to their tests (FuzzUIR, FuzzNPYHeader):
// no input may panic, and every rejection is an ErrMalformed.

func FuzzAmazonReviews(f *testing.F) {
	for _, line := range strings.Split(amazonSample, "\n") {
		f.Add([]byte(line))
	}
	f.Add([]byte(`{'reviewerID': 'u'}`))
	f.Add([]byte(`{"reviewerID":"u","asin":"i","overall":1e400,"unixReviewTime":9223372036854775807}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ReadAmazonReviews(bytes.NewReader(b), "fuzz", AmazonOptions{ReadOptions: ReadOptions{MaxLineBytes: 1 << 16}})
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not match ErrMalformed", err)
		}
	})
}

func FuzzMMRecInter(f *testing.F) {
	f.Add([]byte(interSample))
	f.Add([]byte("user_id:token\titem_id:token\n1\t2\n"))
	f.Add([]byte("userID\titemID\tx_label\n1\t2\t9\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, cols, err := readMMRecRows(bytes.NewReader(b), "fuzz", MMRecOptions{ReadOptions: ReadOptions{MaxLineBytes: 1 << 16}})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		if len(rows) > 0 && (cols.user < 0 || cols.item < 0) {
			t.Fatalf("rows without user or item columns")
		}
	})
}

func FuzzVBPRFeatures(f *testing.F) {
	var buf bytes.Buffer
	WriteVBPRFeatures(&buf, []string{"0000013714", "B00YQ6X8EO"}, vbprRows(2, 4))
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := ReadAmazonReviews(strings.NewReader(amazonSample), "r", AmazonOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ReadVBPRFeatures(ds, bytes.NewReader(b), "fuzz", 4)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		if rep.Rows != len(b)/(10+16) || rep.Attached+rep.Unknown+rep.Duplicate != rep.Rows {
			t.Fatalf("report %+v for %d bytes", rep, len(b))
		}
	})
}
