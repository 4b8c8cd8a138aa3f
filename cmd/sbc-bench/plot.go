//go:build linux

package main

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// series is one target's sweep: its steps in order of calls.
type series struct {
	target string
	steps  []*result
}

// sweepSeries groups runs by target, in the order targets first appear. Of
// several runs at one call count (a step run again) the last is the
// step's outcome, as in the sweep.
func sweepSeries(runs []*result) []series {
	var out []series
	for _, r := range runs {
		i := slices.IndexFunc(out, func(s series) bool { return s.target == r.Target })
		if i < 0 {
			out = append(out, series{target: r.Target})
			i = len(out) - 1
		}
		s := &out[i]
		if j := slices.IndexFunc(s.steps, func(x *result) bool { return x.Calls == r.Calls }); j >= 0 {
			s.steps[j] = r
		} else {
			s.steps = append(s.steps, r)
		}
	}
	for _, s := range out {
		slices.SortFunc(s.steps, func(a, b *result) int { return cmp.Compare(a.Calls, b.Calls) })
	}
	return out
}

// countTicks labels an axis of counts as plain numbers, not "25.00".
type countTicks struct{}

func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'f', -1, 64)
		}
	}
	return ticks
}

// writePlot draws the sweep's runs into a PNG: loss and p99 added latency
// against calls, one line per target, the pass marks dashed.
// minPlotMs is the floor of the latency axis (log scale: no zero).
const minPlotMs = 0.01

func writePlot(path string, runs []*result) error {
	all := sweepSeries(runs)
	if len(all) == 0 {
		return fmt.Errorf("-plot %s: no run to draw", path)
	}
	loss, lat := plot.New(), plot.New()
	loss.Title.Text = "Loss against concurrent calls (G.711, 100 packets/s per call)"
	loss.Y.Label.Text = "loss (%)"
	lat.Title.Text = "p99 one-way added latency (kernel receive timestamps)"
	lat.Y.Label.Text = "p99 latency (ms, log scale)"
	// Log scale: an overloaded step's hundreds of ms must not flatten the
	// ones near the 1 ms mark.
	lat.Y.Scale, lat.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	var lossLines, latLines []any
	for _, s := range all {
		l, p := make(plotter.XYs, len(s.steps)), make(plotter.XYs, len(s.steps))
		for i, r := range s.steps {
			l[i] = plotter.XY{X: float64(r.Calls), Y: r.LossPct}
			p[i] = plotter.XY{X: float64(r.Calls), Y: math.Max(r.LatencyUs.P99/1000, minPlotMs)}
		}
		lossLines = append(lossLines, s.target, l)
		latLines = append(latLines, s.target, p)
	}
	if err := plotutil.AddLinePoints(loss, lossLines...); err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	if err := plotutil.AddLinePoints(lat, latLines...); err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	for _, m := range []struct {
		p     *plot.Plot
		mark  float64
		label string
	}{
		{loss, passLossPct, fmt.Sprintf("pass mark: %.1f %%", passLossPct)},
		{lat, float64(passP99) / float64(time.Millisecond), fmt.Sprintf("pass mark: %v", passP99)},
	} {
		m.p.X.Label.Text = "concurrent calls"
		m.p.X.Tick.Marker = countTicks{}
		m.p.X.Min = 0
		if m.p == loss {
			m.p.Y.Min = 0
		} else {
			m.p.Y.Min = math.Min(m.p.Y.Min, minPlotMs)
		}
		// Room above the pass mark, so the line shows even when every
		// step is far below it.
		m.p.Y.Max = math.Max(m.p.Y.Max, 1.5*m.mark)
		mark := plotter.NewFunction(func(float64) float64 { return m.mark })
		mark.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		mark.Color = color.Gray{Y: 90}
		m.p.Add(mark)
		m.p.Legend.Add(m.label, mark)
		// Top left, clear of the axis: a sweep's lines rise to the right.
		m.p.Legend.Top, m.p.Legend.Left = true, true
		m.p.Legend.XOffs, m.p.Legend.YOffs = vg.Points(12), vg.Points(-4)
		m.p.Add(plotter.NewGrid())
	}

	img := vgimg.New(8*vg.Inch, 9*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8),
		PadLeft: vg.Points(8), PadRight: vg.Points(16), PadY: vg.Points(24)}
	canvases := plot.Align([][]*plot.Plot{{loss}, {lat}}, tiles, dc)
	loss.Draw(canvases[0][0])
	lat.Draw(canvases[1][0])

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("-plot: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-plot: write %s: %w", path, err)
	}
	return nil
}
