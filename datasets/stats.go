package datasets

import (
	"fmt"
	"io"
	"time"

	"github.com/visrec/visrec/events"
)

// Stats summarises a data set.
type Stats struct {
	Users, Items, Interactions int
	// ActiveItems is the number of items with at least one interaction (a loader may keep
	// items that have none, e.g. MMRec's or the synthetic generator's).
	ActiveItems int
	// Density is Interactions / (Users × Items).
	Density float64
	// MinTS and MaxTS are the earliest and latest timestamps (Unix ms) over the
	// interactions with one (TS > 0); HasTime is false when none has.
	MinTS, MaxTS int64
	HasTime      bool
	ByType       map[events.Type]int
	// ItemsWithFeatures counts items with a feature vector of FeatureDim values, and
	// ActiveWithFeatures those of them that have interactions.
	ItemsWithFeatures, ActiveWithFeatures int
	FeatureDim                            int
	ItemsWithText, TextFeatureDim         int
	ItemsWithMeta                         int
	// Split counts interactions per source split label, when the data set has them.
	Split map[uint8]int
}

// Stats computes the summary in one pass over the interactions.
func (d *Dataset) Stats() Stats {
	s := Stats{Users: len(d.Users), Items: len(d.Items), Interactions: len(d.Interactions),
		ByType: make(map[events.Type]int), FeatureDim: d.FeatureDim, TextFeatureDim: d.TextFeatureDim}
	active := make([]bool, len(d.Items))
	for _, x := range d.Interactions {
		s.ByType[x.Type]++
		if int(x.Item) < len(active) && !active[x.Item] {
			active[x.Item] = true
			s.ActiveItems++
		}
		if x.TS > 0 {
			if !s.HasTime || x.TS < s.MinTS {
				s.MinTS = x.TS
			}
			if !s.HasTime || x.TS > s.MaxTS {
				s.MaxTS = x.TS
			}
			s.HasTime = true
		}
	}
	if s.Users > 0 && s.Items > 0 {
		s.Density = float64(s.Interactions) / (float64(s.Users) * float64(s.Items))
	}
	for j, f := range d.Features {
		if len(f) > 0 {
			s.ItemsWithFeatures++
			if j < len(active) && active[j] {
				s.ActiveWithFeatures++
			}
		}
	}
	for _, f := range d.TextFeatures {
		if len(f) > 0 {
			s.ItemsWithText++
		}
	}
	for _, m := range d.ItemMeta {
		if len(m) > 0 {
			s.ItemsWithMeta++
		}
	}
	if d.Split != nil {
		s.Split = make(map[uint8]int)
		for _, l := range d.Split {
			s.Split[l]++
		}
	}
	return s
}

// Write prints the summary as aligned "key: value" lines.
func (s Stats) Write(w io.Writer, name string) error {
	var err error
	p := func(k, format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, "%-18s "+format+"\n", append([]any{k + ":"}, args...)...)
		}
	}
	p("data set", "%s", name)
	p("users", "%d", s.Users)
	p("items", "%d (%d with interactions)", s.Items, s.ActiveItems)
	p("interactions", "%d", s.Interactions)
	for t := events.View; t <= events.Rating; t++ {
		if n := s.ByType[t]; n > 0 {
			p("  "+t.String(), "%d", n)
		}
	}
	p("density", "%.4g%%", 100*s.Density)
	if s.HasTime {
		p("time range", "%s to %s", fmtMillis(s.MinTS), fmtMillis(s.MaxTS))
	} else {
		p("time range", "none (no timestamps)")
	}
	if s.FeatureDim > 0 {
		p("features", "%d-dim for %d items (%.1f%%), %d of the %d with interactions (%.1f%%)", s.FeatureDim,
			s.ItemsWithFeatures, pct(s.ItemsWithFeatures, s.Items), s.ActiveWithFeatures, s.ActiveItems, pct(s.ActiveWithFeatures, s.ActiveItems))
	} else {
		p("features", "none")
	}
	if s.TextFeatureDim > 0 {
		p("text features", "%d-dim for %d items (%.1f%%)", s.TextFeatureDim, s.ItemsWithText, pct(s.ItemsWithText, s.Items))
	}
	if s.ItemsWithMeta > 0 {
		p("metadata", "%d items", s.ItemsWithMeta)
	}
	if s.Split != nil {
		p("source split", "train %d, validation %d, test %d", s.Split[SplitTrain], s.Split[SplitValidation], s.Split[SplitTest])
	}
	return err
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func fmtMillis(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05 UTC")
}
