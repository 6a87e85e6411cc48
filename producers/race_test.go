//go:build race

package producers

// raceEnabled: the race detector slows the code down several times, so wall-clock
// assertions only log.
const raceEnabled = true
