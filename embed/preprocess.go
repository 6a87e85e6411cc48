package embed

import (
	"fmt"
	"image"
	"image/color"
)

// Input geometry of MobileNetV2.
const (
	Size     = 224                    // input height and width
	Channels = 3                      // R, G, B
	InputLen = Channels * Size * Size // float32 values per image, NCHW
)

// ImageNet normalisation, in the order R, G, B (model zoo convention).
const (
	meanR, meanG, meanB = 0.485, 0.456, 0.406
	stdR, stdG, stdB    = 0.229, 0.224, 0.225
)

// Preprocess returns img as the model's input: InputLen float32 values, NCHW (all of R, then
// G, then B, each 224 rows of 224). It is the exact procedure that produced the reference
// features (../shared/data/movielens-posters/features/README.md):
//
//   - nearest-neighbour stretch of the whole image to 224×224 (aspect ratio not kept, no crop,
//     no antialiasing): output pixel (x, y) samples source pixel
//     (min(w-1, x*w/224), min(h-1, y*h/224)) in integer arithmetic, relative to the bounds;
//   - the sampled pixel's 8-bit R, G, B: color.YCbCrToRGB(Y, Cb, Cr) for an *image.YCbCr (what
//     image/jpeg returns for colour JPEGs), the color.RGBAModel conversion for any other type;
//   - value = (p/255 - mean[c]) / std[c] in float64, stored as float32, with
//     mean = (0.485, 0.456, 0.406) and std = (0.229, 0.224, 0.225).
//
// An image with an empty side gives an error.
func Preprocess(img image.Image) ([]float32, error) {
	dst := make([]float32, InputLen)
	if err := PreprocessInto(dst, img); err != nil {
		return nil, err
	}
	return dst, nil
}

// PreprocessInto is Preprocess writing into dst, which must hold at least InputLen values;
// only dst[:InputLen] is written. It allocates nothing and is safe for concurrent use on
// distinct dst.
func PreprocessInto(dst []float32, img image.Image) error {
	if len(dst) < InputLen {
		return fmt.Errorf("preprocess: dst holds %d values, want %d", len(dst), InputLen)
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return &ImageError{Reason: ReasonEmpty, Err: fmt.Errorf("image is %d×%d", w, h)}
	}
	var lut [Channels][256]float32
	normTable(&lut)
	var xs [Size]int
	for x := range xs {
		xs[x] = b.Min.X + min(w-1, x*w/Size)
	}
	r, g, bl := dst[0:Size*Size], dst[Size*Size:2*Size*Size], dst[2*Size*Size:InputLen]
	for y := 0; y < Size; y++ {
		sy := b.Min.Y + min(h-1, y*h/Size)
		row := y * Size
		switch m := img.(type) {
		case *image.YCbCr:
			for x, sx := range xs {
				yi, ci := m.YOffset(sx, sy), m.COffset(sx, sy)
				pr, pg, pb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				r[row+x], g[row+x], bl[row+x] = lut[0][pr], lut[1][pg], lut[2][pb]
			}
		default:
			for x, sx := range xs {
				c := color.RGBAModel.Convert(img.At(sx, sy)).(color.RGBA)
				r[row+x], g[row+x], bl[row+x] = lut[0][c.R], lut[1][c.G], lut[2][c.B]
			}
		}
	}
	return nil
}

// normTable fills t[c][p] = float32((p/255 - mean[c]) / std[c]) computed in float64: the
// normalisation of every 8-bit value, so that the pixel loop only looks values up.
func normTable(t *[Channels][256]float32) {
	mean := [Channels]float64{meanR, meanG, meanB}
	std := [Channels]float64{stdR, stdG, stdB}
	for c := range Channels {
		for p := range 256 {
			t[c][p] = float32((float64(p)/255 - mean[c]) / std[c])
		}
	}
}
