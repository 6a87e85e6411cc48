package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/visrec/visrec/events"
)

// AmazonOptions say how to read Amazon review JSON lines.
type AmazonOptions struct {
	ReadOptions
	// ParentASIN keys items by parent_asin (2023 files) instead of asin, where present.
	// VBPR's image features are keyed by asin, so leave it off to attach them.
	ParentASIN bool
}

// amazonReview holds the keys read from one review; pointers tell absent from zero.
//
//   - 2014 (McAuley et al., SIGIR 2015, the VBPR paper's data) and 2018 (Ni et al.):
//     reviewerID, asin, overall (1-5), unixReviewTime (seconds);
//   - 2023 (Hou et al.): user_id, asin, parent_asin, rating, timestamp (milliseconds).
type amazonReview struct {
	ReviewerID     *string  `json:"reviewerID"`
	UserID         *string  `json:"user_id"`
	ASIN           *string  `json:"asin"`
	ParentASIN     *string  `json:"parent_asin"`
	Overall        *float64 `json:"overall"`
	Rating         *float64 `json:"rating"`
	UnixReviewTime *int64   `json:"unixReviewTime"`
	Timestamp      *int64   `json:"timestamp"`
}

// LoadAmazonReviews reads Amazon reviews, one JSON object per line (.gz transparently), in
// the 2014, 2018 or 2023 layout (see amazonReview), into rating interactions: user the
// reviewer, item the ASIN, Value the stars, TS the review time in Unix milliseconds. Each
// line needs a user, an item, a finite rating and a positive time; other keys (the review
// text, votes, images) are ignored. A line that is a Python literal rather than JSON (the
// old "loose" files) is reported as such.
func LoadAmazonReviews(path string, opts AmazonOptions) (*Dataset, error) {
	r, closeFn, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	ds, err := ReadAmazonReviews(r, path, opts)
	if err != nil {
		return nil, err
	}
	ds.Name = baseName(path)
	return ds, nil
}

// ReadAmazonReviews is LoadAmazonReviews from a reader; name is used in errors and as the
// data set's name.
func ReadAmazonReviews(r io.Reader, name string, opts AmazonOptions) (*Dataset, error) {
	ls := newLineScanner(r, name, opts.MaxLineBytes)
	b := NewBuilder(name)
	for {
		line, ok := ls.next()
		if !ok {
			break
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		user, item, value, ts, err := parseAmazonLine(line, opts.ParentASIN)
		if err != nil {
			if err := opts.bad(lineErr(name, ls.n, "%v", err)); err != nil {
				return nil, err
			}
			continue
		}
		b.Add(user, item, value, ts, events.Rating)
	}
	if err := ls.err(); err != nil {
		return nil, err
	}
	return b.Dataset(), nil
}

func parseAmazonLine(line []byte, parent bool) (user, item string, value float32, ts int64, err error) {
	if bytes.HasPrefix(line, []byte("{'")) {
		return "", "", 0, 0, errors.New("a Python dict literal, not JSON (convert the old loose files with json.dumps(ast.literal_eval(line)))")
	}
	var rv amazonReview
	if err := json.Unmarshal(line, &rv); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			want := "number"
			if strings.Contains(te.Type.String(), "string") {
				want = "string"
			}
			return "", "", 0, 0, fmt.Errorf("key %q is a JSON %s, want a %s", te.Field, te.Value, want)
		}
		return "", "", 0, 0, fmt.Errorf("not a JSON object: %v", err)
	}
	switch {
	case rv.ReviewerID != nil:
		user = *rv.ReviewerID
	case rv.UserID != nil:
		user = *rv.UserID
	}
	if parent && rv.ParentASIN != nil && *rv.ParentASIN != "" {
		item = *rv.ParentASIN
	} else if rv.ASIN != nil {
		item = *rv.ASIN
	}
	var stars *float64
	switch {
	case rv.Overall != nil:
		stars = rv.Overall
	case rv.Rating != nil:
		stars = rv.Rating
	}
	switch {
	case rv.UnixReviewTime != nil:
		if *rv.UnixReviewTime > math.MaxInt64/1000 {
			return "", "", 0, 0, fmt.Errorf("unixReviewTime %d is out of range", *rv.UnixReviewTime)
		}
		ts = *rv.UnixReviewTime * 1000
	case rv.Timestamp != nil:
		ts = *rv.Timestamp
	}
	switch {
	case user == "":
		return "", "", 0, 0, errors.New("no reviewer: want a non-empty \"reviewerID\" (or \"user_id\")")
	case item == "":
		return "", "", 0, 0, errors.New("no item: want a non-empty \"asin\" (or \"parent_asin\")")
	case stars == nil:
		return "", "", 0, 0, errors.New("no rating: want \"overall\" (or \"rating\")")
	case math.IsNaN(*stars) || math.IsInf(*stars, 0):
		return "", "", 0, 0, fmt.Errorf("rating %v is not finite", *stars)
	case ts <= 0:
		return "", "", 0, 0, errors.New("no review time: want a positive \"unixReviewTime\" (seconds) or \"timestamp\" (milliseconds)")
	}
	for _, f := range [2]struct{ what, id string }{{"reviewer", user}, {"item", item}} {
		if err := checkID([]byte(f.id)); err != nil {
			return "", "", 0, 0, fmt.Errorf("%s id %q: %w", f.what, truncateBytes([]byte(f.id), 40), err)
		}
	}
	return user, item, float32(*stars), ts, nil
}
