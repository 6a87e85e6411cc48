package embed

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by an Embedder's methods after Close.
var ErrClosed = errors.New("embedder is closed")

// ErrBadImage is wrapped by every *ImageError, so errors.Is(err, ErrBadImage) tells a file
// that cannot be used (skip it, count it) apart from an infrastructure failure (stop).
var ErrBadImage = errors.New("unusable image")

// Reasons an image is skipped, the values of ImageError.Reason. They are short stable tokens
// for counters and summaries.
const (
	ReasonUnreadable = "unreadable"  // the file cannot be opened or read
	ReasonNotImage   = "not_image"   // no registered image format recognises it (text, ...)
	ReasonCorrupt    = "corrupt"     // a known format, but decoding fails (truncated, bad data)
	ReasonTooLarge   = "too_large"   // more than MaxPixels pixels
	ReasonEmpty      = "empty_image" // zero width or height
	ReasonBadID      = "bad_id"      // the file name gives no valid item id
	ReasonDuplicate  = "duplicate"   // a second file for an item id already embedded
)

// ImageError says why one image was skipped. It wraps ErrBadImage and the cause.
type ImageError struct {
	Path   string // the file, or "" for an image given in memory
	Reason string // one of the Reason* constants
	Err    error  // the cause
}

func (e *ImageError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %v", e.Reason, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Path, e.Reason, e.Err)
}

// Unwrap returns ErrBadImage and the cause.
func (e *ImageError) Unwrap() []error { return []error{ErrBadImage, e.Err} }

// ReasonOf returns the Reason of the *ImageError in err's chain, or "" if there is none.
func ReasonOf(err error) string {
	var ie *ImageError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ""
}
