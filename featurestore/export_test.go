package featurestore

// SetAfterPart makes r call f after each part of a commit in parts; an error from f stops
// the commit there, as a crash of the writer would (tests only).
func SetAfterPart(r *Redis, f func(part int) error) { r.afterPart = f }
