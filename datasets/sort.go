package datasets

import "slices"

func sortByTime(xs []Interaction) {
	slices.SortStableFunc(xs, func(a, b Interaction) int {
		switch {
		case a.TS < b.TS:
			return -1
		case a.TS > b.TS:
			return 1
		}
		return 0
	})
}
