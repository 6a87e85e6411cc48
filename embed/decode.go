package embed

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // registered for Decode
	_ "image/jpeg" // registered for Decode: Go's decoder, as the reference features used
	_ "image/png"  // registered for Decode
	"io"
	"os"
)

// MaxPixels bounds the pixel count of an image that Decode accepts (checked from the header,
// before decoding), so that a decompression bomb is refused instead of exhausting memory.
const MaxPixels = 64 << 20

// MaxFileBytes bounds the bytes DecodeFile and Decode read.
const MaxFileBytes = 256 << 20

// DecodeFile reads and decodes the image file at path; see Decode. Every error is an
// *ImageError carrying path.
func DecodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &ImageError{Path: path, Reason: ReasonUnreadable, Err: err}
	}
	defer f.Close()
	img, err := Decode(f)
	var ie *ImageError
	if errors.As(err, &ie) {
		ie.Path = path
	}
	return img, err
}

// Decode reads an image, at most MaxFileBytes, and decodes it: JPEG with Go's image/jpeg (as
// the reference features were), PNG or GIF. Content no registered format recognises is a
// ReasonNotImage error; a known format that fails to decode is ReasonCorrupt; an image over
// MaxPixels or with an empty side is refused from its header, before its pixels are decoded.
// Every error is an *ImageError. Decode never panics on any input.
func Decode(r io.Reader) (image.Image, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, &ImageError{Reason: ReasonUnreadable, Err: err}
	}
	if len(b) > MaxFileBytes {
		return nil, &ImageError{Reason: ReasonTooLarge, Err: fmt.Errorf("more than %d bytes", MaxFileBytes)}
	}
	return decodeBytes(b)
}

func decodeBytes(b []byte) (img image.Image, err error) {
	defer func() {
		// The standard decoders do not panic on bad input as far as is known; this keeps
		// the promise even if one does.
		if p := recover(); p != nil {
			img, err = nil, &ImageError{Reason: ReasonCorrupt, Err: fmt.Errorf("decoder panicked: %v", p)}
		}
	}()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, decodeErr(err, format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, &ImageError{Reason: ReasonEmpty, Err: fmt.Errorf("%s image is %d×%d", format, cfg.Width, cfg.Height)}
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, &ImageError{Reason: ReasonTooLarge, Err: fmt.Errorf("%s image is %d×%d, more than %d pixels", format, cfg.Width, cfg.Height, MaxPixels)}
	}
	img, format, err = image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, decodeErr(err, format)
	}
	if r := img.Bounds(); r.Dx() <= 0 || r.Dy() <= 0 {
		return nil, &ImageError{Reason: ReasonEmpty, Err: fmt.Errorf("%s image is %d×%d", format, r.Dx(), r.Dy())}
	}
	return img, nil
}

func decodeErr(err error, format string) error {
	if errors.Is(err, image.ErrFormat) {
		return &ImageError{Reason: ReasonNotImage, Err: errors.New("not a JPEG, PNG or GIF image")}
	}
	if format == "" {
		format = "image"
	}
	return &ImageError{Reason: ReasonCorrupt, Err: fmt.Errorf("decode %s: %w", format, err)}
}
