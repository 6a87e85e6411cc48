package embed

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"
)

// want computes the model input of img independently of Preprocess: per output element, with
// a float64 floor for the stretch, the image's own At for the pixel and the normalisation
// written out again.
func want(img image.Image) []float32 {
	means := []float64{0.485, 0.456, 0.406}
	stds := []float64{0.229, 0.224, 0.225}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float32, 3*224*224)
	for c := 0; c < 3; c++ {
		for y := 0; y < 224; y++ {
			for x := 0; x < 224; x++ {
				sx := int(math.Floor(float64(x) * float64(w) / 224))
				sy := int(math.Floor(float64(y) * float64(h) / 224))
				if sx > w-1 {
					sx = w - 1
				}
				if sy > h-1 {
					sy = h - 1
				}
				var rgb [3]uint8
				switch p := img.At(b.Min.X+sx, b.Min.Y+sy).(type) {
				case color.YCbCr:
					rgb[0], rgb[1], rgb[2] = color.YCbCrToRGB(p.Y, p.Cb, p.Cr)
				default:
					r, g, bl, _ := p.RGBA()
					rgb = [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}
				}
				out[c*224*224+y*224+x] = float32((float64(rgb[c])/255.0 - means[c]) / stds[c])
			}
		}
	}
	return out
}

func randomRGBA(rng *rand.Rand, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	return img
}

func randomYCbCr(rng *rand.Rand, w, h int, sub image.YCbCrSubsampleRatio) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), sub)
	for _, p := range [][]uint8{img.Y, img.Cb, img.Cr} {
		for i := range p {
			p[i] = uint8(rng.IntN(256))
		}
	}
	return img
}

func checkSame(t *testing.T, name string, got, exp []float32) {
	t.Helper()
	if len(got) != len(exp) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(exp))
	}
	for i := range got {
		if got[i] != exp[i] {
			c, rest := i/(224*224), i%(224*224)
			t.Fatalf("%s: channel %d pixel (%d,%d) = %v, want %v", name, c, rest%224, rest/224, got[i], exp[i])
		}
	}
}

func TestPreprocessSynthetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sub := func(img *image.YCbCr, r image.Rectangle) image.Image { return img.SubImage(r) }
	cases := []struct {
		name string
		img  image.Image
	}{
		{"rgba 5x3", randomRGBA(rng, 5, 3)},
		{"rgba 1x1", randomRGBA(rng, 1, 1)},
		{"rgba 500x333 (shrink)", randomRGBA(rng, 500, 333)},
		{"ycbcr 4:2:0 185x278 (a poster's size)", randomYCbCr(rng, 185, 278, image.YCbCrSubsampleRatio420)},
		{"ycbcr 4:4:4 7x9", randomYCbCr(rng, 7, 9, image.YCbCrSubsampleRatio444)},
		{"ycbcr 4:2:2 odd 13x11", randomYCbCr(rng, 13, 11, image.YCbCrSubsampleRatio422)},
		{"ycbcr sub-image with offset bounds", sub(randomYCbCr(rng, 60, 50, image.YCbCrSubsampleRatio420), image.Rect(7, 5, 40, 45))},
		{"rgba sub-image with offset bounds", randomRGBA(rng, 30, 30).SubImage(image.Rect(3, 4, 20, 29))},
		{"gray 10x20", &image.Gray{Pix: bytes.Repeat([]byte{0, 77, 200, 255}, 50), Stride: 10, Rect: image.Rect(0, 0, 10, 20)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Preprocess(tc.img)
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, tc.name, got, want(tc.img))
		})
	}
}

func TestPreprocessKnownValues(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for i := 0; i < len(img.Pix); i += 4 {
		copy(img.Pix[i:], []uint8{255, 0, 128, 255})
	}
	got, err := Preprocess(img)
	if err != nil {
		t.Fatal(err)
	}
	for c, v := range []float64{(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128.0/255 - 0.406) / 0.225} {
		for _, i := range []int{0, 224*224 - 1} {
			if g := got[c*224*224+i]; g != float32(v) {
				t.Errorf("channel %d element %d = %v, want %v", c, i, g, float32(v))
			}
		}
	}
}

// A JPEG decodes to *image.YCbCr; its preprocessing agrees with the independent computation.
func TestPreprocessJPEG(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, randomRGBA(rng, 183, 271), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	img, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.YCbCr); !ok {
		t.Fatalf("decoded %T, want *image.YCbCr", img)
	}
	got, err := Preprocess(img)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "jpeg", got, want(img))
}

func TestPreprocessErrors(t *testing.T) {
	if _, err := Preprocess(image.NewRGBA(image.Rect(0, 0, 0, 5))); ReasonOf(err) != ReasonEmpty {
		t.Errorf("empty image: %v, want reason %s", err, ReasonEmpty)
	}
	if err := PreprocessInto(make([]float32, 10), randomRGBA(rand.New(rand.NewPCG(1, 1)), 2, 2)); err == nil {
		t.Error("short dst: no error")
	}
}
