package datasets

import "slices"

func sortByTime(xs []Interaction) {
	if slices.IsSortedFunc(xs, compareTS) {
		return
	}
	slices.SortStableFunc(xs, compareTS)
}

func compareTS(a, b Interaction) int {
	switch {
	case a.TS < b.TS:
		return -1
	case a.TS > b.TS:
		return 1
	}
	return 0
}

// sortByTimeWithSplit sorts xs by time (stable) and permutes split, aligned with xs, alike.
func sortByTimeWithSplit(xs []Interaction, split []uint8) {
	if slices.IsSortedFunc(xs, compareTS) {
		return
	}
	type pair struct {
		x Interaction
		s uint8
	}
	ps := make([]pair, len(xs))
	for i := range xs {
		ps[i] = pair{xs[i], split[i]}
	}
	slices.SortStableFunc(ps, func(a, b pair) int { return compareTS(a.x, b.x) })
	for i := range ps {
		xs[i], split[i] = ps[i].x, ps[i].s
	}
}
