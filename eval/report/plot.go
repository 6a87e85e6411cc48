package report

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot size in pixels and the resolution at which text sizes in points are rendered.
const (
	PlotWidthPx  = 800
	PlotHeightPx = 500
	plotDPI      = 96
)

// Series is one named line of a plot: the points (X[i], Y[i]).
type Series struct {
	Name string
	X, Y []float64
}

// Bars is one named group member of a bar chart: Values[i] is the height of its bar in
// category i.
type Bars struct {
	Name   string
	Values []float64
}

// PlotLines writes an 800×500 PNG to path with one line per series (distinct colours and
// dash patterns, point markers when a series has at most 30 points), a legend to the
// right of the axes, and the command as a small monospace caption under the plot, wrapped
// to the width. X and Y of a series must have the same, non-zero length and hold no NaN
// or infinity.
func PlotLines(path, title, xLabel, yLabel, command string, series []Series) error {
	if len(series) == 0 {
		return fmt.Errorf("report: plot %q has no series", title)
	}
	p := newPlot(title, xLabel, yLabel)
	leg := plot.NewLegend()
	for i, s := range series {
		if len(s.X) != len(s.Y) || len(s.X) == 0 {
			return fmt.Errorf("report: plot %q series %q has %d x and %d y values", title, s.Name, len(s.X), len(s.Y))
		}
		pts := make(plotter.XYs, len(s.X))
		for j := range s.X {
			if !finite(s.X[j]) || !finite(s.Y[j]) {
				return fmt.Errorf("report: plot %q series %q point %d is (%v, %v)", title, s.Name, j, s.X[j], s.Y[j])
			}
			pts[j] = plotter.XY{X: s.X[j], Y: s.Y[j]}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
		p.Add(l)
		thumbs := []plot.Thumbnailer{l}
		if len(pts) <= 30 {
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return err
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: l.Color, Radius: vg.Points(2.5), Shape: plotutil.Shape(i)}
			p.Add(sc)
			thumbs = append(thumbs, sc)
		}
		leg.Add(s.Name, thumbs...)
	}
	return render(path, p, &leg, names(series), command)
}

// PlotBars writes an 800×500 PNG to path with a grouped bar chart: one group per category
// along X, one bar per Bars in each group (with a legend), and the command as a caption
// like PlotLines. Each Bars must have one finite value per category.
func PlotBars(path, title, yLabel, command string, categories []string, bars []Bars) error {
	if len(bars) == 0 || len(categories) == 0 {
		return fmt.Errorf("report: bar plot %q has no bars or no categories", title)
	}
	p := newPlot(title, "", yLabel)
	leg := plot.NewLegend()
	// Each group takes 80% of the space of one category on the 600 pt wide canvas.
	w := vg.Points(0.8 * 480 / float64(len(categories)*len(bars)))
	for i, b := range bars {
		if len(b.Values) != len(categories) {
			return fmt.Errorf("report: bar plot %q bars %q have %d values for %d categories", title, b.Name, len(b.Values), len(categories))
		}
		for j, v := range b.Values {
			if !finite(v) {
				return fmt.Errorf("report: bar plot %q bars %q value %d is %v", title, b.Name, j, v)
			}
		}
		bc, err := plotter.NewBarChart(plotter.Values(b.Values), w)
		if err != nil {
			return err
		}
		bc.Color = plotutil.Color(i)
		bc.LineStyle.Width = 0
		bc.Offset = w * vg.Length(2*i-len(bars)+1) / 2
		p.Add(bc)
		leg.Add(b.Name, bc)
	}
	p.NominalX(categories...)
	// Half a category of room on each side, the zero line in view and 5% headroom.
	p.X.Min, p.X.Max = -0.5, float64(len(categories))-0.5
	p.Y.Min = math.Min(p.Y.Min, 0)
	p.Y.Max = math.Max(p.Y.Max, 0) + 0.05*(p.Y.Max-p.Y.Min)
	barNames := make([]string, len(bars))
	for i, b := range bars {
		barNames[i] = b.Name
	}
	return render(path, p, &leg, barNames, command)
}

func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	return p
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// captionStyle is the text style of the command caption.
func captionStyle() text.Style {
	return text.Style{
		Color:   color.Gray{Y: 0x50},
		Font:    font.From(font.Font{Typeface: "Liberation", Variant: "Mono"}, 8),
		Handler: plot.DefaultTextHandler,
	}
}

func names(series []Series) []string {
	n := make([]string, len(series))
	for i, s := range series {
		n[i] = s.Name
	}
	return n
}

// render draws p, the legend (whose entries are named names) to its right and the caption under it on an
// 800×500 px canvas, and writes it to path as PNG.
func render(path string, p *plot.Plot, leg *plot.Legend, names []string, command string) error {
	img := vgimg.NewWith(vgimg.UseImage(image.NewRGBA(image.Rect(0, 0, PlotWidthPx, PlotHeightPx))), vgimg.UseDPI(plotDPI))
	dc := draw.New(img)
	const pad = vg.Length(6)

	// Caption: "$ command", wrapped, at most a third of the height.
	sty := captionStyle()
	lineH := sty.FontExtents().Height * 1.15
	var lines []string
	if command != "" {
		lines = wrap("$ "+command, sty, dc.Max.X-dc.Min.X-2*pad)
		if maxLines := int((dc.Max.Y - dc.Min.Y) / 3 / lineH); len(lines) > maxLines {
			lines = append(lines[:maxLines-1], "…")
		}
	}
	captionH := vg.Length(0)
	if len(lines) > 0 {
		captionH = vg.Length(len(lines))*lineH + 2*pad
	}
	for i, l := range lines {
		y := dc.Min.Y + pad + vg.Length(len(lines)-1-i)*lineH - sty.FontExtents().Descent
		dc.FillText(sty, vg.Point{X: dc.Min.X + pad, Y: y}, l)
	}

	// Legend column on the right, as wide as its widest entry.
	legW := vg.Length(0)
	leg.Top, leg.Left = true, true
	if len(names) > 0 {
		for _, e := range names {
			legW = max(legW, leg.TextStyle.Width(e))
		}
		legW += leg.ThumbnailWidth + leg.TextStyle.Font.Size + 2*pad
		legW = min(legW, (dc.Max.X-dc.Min.X)*0.4)
		lc := draw.Crop(dc, dc.Max.X-dc.Min.X-legW+pad, -pad, captionH, -3*pad)
		leg.Draw(lc)
	}
	p.Draw(draw.Crop(dc, pad, -legW, captionH, -pad))

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("report: writing %s: %w", path, err)
	}
	return f.Close()
}

// wrap breaks s into lines no wider than width in style sty, at spaces where possible and
// inside a word where a word alone is too wide.
func wrap(s string, sty text.Style, width vg.Length) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		cand := word
		if cur != "" {
			cand = cur + " " + word
		}
		if sty.Width(cand) <= width {
			cur = cand
			continue
		}
		if cur != "" {
			lines = append(lines, cur)
		}
		cur = word
		for sty.Width(cur) > width {
			r := []rune(cur)
			n := len(r) - 1
			for n > 1 && sty.Width(string(r[:n])) > width {
				n--
			}
			lines = append(lines, string(r[:n]))
			cur = string(r[n:])
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}
