package featurestore

// SetAfterPart makes r call f after each part of a commit in parts; an error from f stops
// the commit there, as a crash of the writer would (tests only).
func SetAfterPart(r *Redis, f func(part int) error) { r.afterPart = f }

// SetAfterChecks makes r call f between the checks that a commit in parts runs ahead and its
// stage, where another writer may come in (tests only).
func SetAfterChecks(r *Redis, f func() error) { r.afterChecks = f }
