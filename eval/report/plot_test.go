package report

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// plotDir is where the tests write their PNGs: $VISREC_REPORT_PLOT_DIR if set (to look at
// them), else a temporary folder.
func plotDir(t *testing.T) string {
	if d := os.Getenv("VISREC_REPORT_PLOT_DIR"); d != "" {
		return d
	}
	return t.TempDir()
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != PlotWidthPx || b.Dy() != PlotHeightPx {
		t.Errorf("%s is %dx%d, want %dx%d", path, b.Dx(), b.Dy(), PlotWidthPx, PlotHeightPx)
	}
}

func curve(name string, n int, f func(x float64) float64) Series {
	s := Series{Name: name}
	for i := range n {
		x := float64(i) * 1000
		s.X = append(s.X, x)
		s.Y = append(s.Y, f(x))
	}
	return s
}

func TestPlotLines(t *testing.T) {
	path := filepath.Join(plotDir(t), "lines.png")
	series := []Series{
		curve("bpr", 100, func(x float64) float64 { return 0.2 * (1 - math.Exp(-x/20000)) }),
		curve("mf-implicit", 100, func(x float64) float64 { return 0.15 * (1 - math.Exp(-x/30000)) }),
		curve("popularity", 20, func(x float64) float64 { return 0.08 }),
	}
	cmd := Command("go", "run", "./cmd/visrec", "eval", "prequential",
		"--data", "../shared/data/movielens-posters/ratings.csv", "--models", "bpr,mf-implicit",
		"--factors", "64", "--window", "5000", "--every", "1000", "--out", "docs/img/prequential-movielens.png",
		"--a-very-long-argument-without-any-spaces-that-must-be-broken-inside-the-word-because-it-is-wider-than-the-whole-caption-line-of-the-plot")
	if err := PlotLines(path, "Prequential Recall@10, MovieLens", "events", "Recall@10", cmd, series); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path)
}

func TestPlotBars(t *testing.T) {
	path := filepath.Join(plotDir(t), "bars.png")
	bars := []Bars{
		{Name: "Recall@10", Values: []float64{0.11, 0.09, 0.05}},
		{Name: "NDCG@10", Values: []float64{0.13, 0.10, 0.06}},
	}
	err := PlotBars(path, "Temporal split, MovieLens", "score", "visrec eval --split temporal",
		[]string{"bpr", "wmf", "popularity"}, bars)
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path)
}

func TestPlotRejectsBadSeries(t *testing.T) {
	dir := t.TempDir()
	for name, s := range map[string][]Series{
		"none":       nil,
		"empty":      {{Name: "a"}},
		"mismatched": {{Name: "a", X: []float64{1, 2}, Y: []float64{1}}},
		"nan":        {{Name: "a", X: []float64{1, 2}, Y: []float64{1, math.NaN()}}},
		"inf":        {{Name: "a", X: []float64{math.Inf(1)}, Y: []float64{1}}},
	} {
		if err := PlotLines(filepath.Join(dir, name+".png"), "t", "x", "y", "", s); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := PlotBars(filepath.Join(dir, "b.png"), "t", "y", "", []string{"a", "b"}, []Bars{{Name: "x", Values: []float64{1}}}); err == nil {
		t.Error("bars with too few values: no error")
	}
}

func TestPlotWithoutCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plain.png")
	if err := PlotLines(path, "", "", "", "", []Series{{Name: "one", X: []float64{0, 1}, Y: []float64{0, 1}}}); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path)
}

func TestWrap(t *testing.T) {
	sty := captionStyle()
	width := sty.Width(strings.Repeat("x", 20))
	lines := wrap("aaa bbb "+strings.Repeat("c", 45)+" ddd", sty, width)
	for _, l := range lines {
		if sty.Width(l) > width {
			t.Errorf("line %q wider than the limit", l)
		}
	}
	if got := strings.Join(lines, ""); strings.ReplaceAll(got, " ", "") != "aaabbb"+strings.Repeat("c", 45)+"ddd" {
		t.Errorf("wrap lost text: %q", lines)
	}
	if lines[0] != "aaa bbb" {
		t.Errorf("first line %q, want %q", lines[0], "aaa bbb")
	}
}
