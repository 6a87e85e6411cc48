package datasets

import (
	"math"
	"path/filepath"
	"strings"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/producers"
)

// FromEvents builds a data set from events in any order (the result is sorted by time,
// stable). An event without a value gets Value 1 (implicit feedback).
func FromEvents(name string, evs []events.Interaction) *Dataset {
	b := NewBuilder(name)
	b.Grow(len(evs))
	for i := range evs {
		e := &evs[i]
		v := float32(1)
		if e.HasValue {
			v = e.Value
		}
		b.Add(e.User, e.Item, v, e.Timestamp, e.Type)
	}
	return b.Dataset()
}

// LoadLog reads an event log with the producers package's readers (MovieLens ratings.csv,
// u.data, ratings.dat; CSV with a header naming its columns; JSONL of event-schema-v1
// objects; .gz transparently) into a data set named after the file. opts are passed on
// as they are (see producers.LogOptions; AssumeSorted is ignored, the log is loaded whole).
// The stats say what was read and skipped. Malformed lines are errors naming file and
// line, matching both ErrMalformed and producers.ErrBadLine.
func LoadLog(path string, opts producers.LogOptions) (*Dataset, producers.LogStats, error) {
	opts.AssumeSorted = false
	evs, st, err := producers.ReadLog(path, opts)
	if err != nil {
		return nil, st, markMalformed(err)
	}
	return FromEvents(baseName(path), evs), st, nil
}

// loadLogReporting is LoadLog with ReadOptions' OnBad: skipped lines are reported to OnBad
// after the read (all of them: MaxReported is unbounded).
func loadLogReporting(path string, lo producers.LogOptions, ro ReadOptions) (*Dataset, error) {
	if ro.OnBad != nil {
		lo.SkipBad = true
		lo.MaxReported = math.MaxInt32
	}
	if ro.MaxLineBytes > 0 {
		lo.MaxLineBytes = ro.MaxLineBytes
	}
	ds, st, err := LoadLog(path, lo)
	if err != nil {
		return nil, err
	}
	for _, bad := range st.FirstBad {
		if err := ro.bad(markMalformed(bad)); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// LoadMovieLens reads one MovieLens ratings file: ratings.csv (ml-latest, ml-latest-small,
// ml-20m, ml-25m), u.data (ml-100k) or ratings.dat (ml-1m, ml-10m), told apart by name and
// first line. Every interaction is a rating (Type events.Rating, Value the stars) with its
// timestamp in Unix milliseconds.
func LoadMovieLens(path string) (*Dataset, error) {
	return LoadMovieLensWith(path, ReadOptions{})
}

// LoadMovieLensWith is LoadMovieLens with options.
func LoadMovieLensWith(path string, opts ReadOptions) (*Dataset, error) {
	lo := producers.DefaultLogOptions()
	lo.Format = producers.FormatMovieLens
	return loadLogReporting(path, lo, opts)
}

// baseName is the file name without directory and without .gz and one more extension.
func baseName(path string) string {
	b := strings.TrimSuffix(filepath.Base(path), ".gz")
	return strings.TrimSuffix(b, filepath.Ext(b))
}
