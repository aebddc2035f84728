package browser

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"sort"
)

// Set-of-marks drawing, as BrowserGym's overlay_som: a dashed black box
// around each marked element and, at its top left, a black tag with a
// white outline and the bid in white.
const (
	somLineWidth = 2
	somDash      = 4 // pixels drawn
	somGap       = 8 // pixels skipped
	somTagMargin = 2
	somMinArea   = 20 // smaller boxes are skipped, as BrowserGym does
)

var (
	somInk = color.RGBA{0, 0, 0, 255}
	somTxt = color.RGBA{255, 255, 255, 255}
)

// drawSetOfMarks draws the marks of props onto a copy of the PNG shot and
// returns it as a PNG (set_of_marks). It draws in Go on the one page
// screenshot instead of drawing in the page and taking a second one: the
// second screenshot waited for another frame, the bulk of an observation's
// time. Boxes are CSS pixels of the top frame's viewport, scaled by the
// screenshot's width over the viewport width when they differ (device
// pixel ratio); viewportW <= 0 means 1:1.
func drawSetOfMarks(shot []byte, props map[string]elemProps, viewportW float64) ([]byte, error) {
	src, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return nil, fmt.Errorf("decode the page screenshot to draw the marks on: %w", err)
	}
	// The decoded image is already a copy of the screenshot: draw on it
	// when it is RGBA or NRGBA (Chromium's PNGs are), which spares
	// copying megabytes. Any other model (grey, paletted) could not show
	// the marks' colours, so it is converted.
	var img draw.Image
	switch src := src.(type) {
	case *image.RGBA:
		img = src
	case *image.NRGBA:
		img = src
	default:
		rgba := image.NewRGBA(src.Bounds())
		draw.Draw(rgba, rgba.Bounds(), src, src.Bounds().Min, draw.Src)
		img = rgba
	}
	scale := 1.0
	if viewportW > 0 {
		scale = float64(img.Bounds().Dx()) / viewportW
	}
	markAll(img, props, scale)
	var out bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&out, img); err != nil {
		return nil, fmt.Errorf("encode the set-of-marks image: %w", err)
	}
	return out.Bytes(), nil
}

// markAll draws every set_of_marks element of props, in bid order so that
// overlapping tags always stack the same way.
func markAll(img draw.Image, props map[string]elemProps, scale float64) {
	bids := make([]string, 0, len(props))
	for bid, p := range props {
		if p.SetOfMarks {
			bids = append(bids, bid)
		}
	}
	sort.Strings(bids)
	for _, bid := range bids {
		bb := props[bid].BBox
		x, y, w, h := bb[0]*scale, bb[1]*scale, bb[2]*scale, bb[3]*scale
		if !finite(x, y, w, h) || w*h < somMinArea {
			continue
		}
		dashedBox(img, x, y, x+w, y+h)
		drawTag(img, bid, x, y)
	}
}

func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e7 {
			return false
		}
	}
	return true
}

// dashedBox draws the four edges clockwise from the top left, each dashed
// from its own start, as BrowserGym's linedashed calls do.
func dashedBox(img draw.Image, x0, y0, x1, y1 float64) {
	dashedLine(img, x0, y0, x1, y0)
	dashedLine(img, x1, y0, x1, y1)
	dashedLine(img, x1, y1, x0, y1)
	dashedLine(img, x0, y1, x0, y0)
}

// dashedLine draws an axis-parallel dashed line of somLineWidth pixels
// from (x0, y0) towards (x1, y1). Dashes wholly outside the image are not
// visited, so a huge box costs no more than the image.
func dashedLine(img draw.Image, x0, y0, x1, y1 float64) {
	dx, dy := x1-x0, y1-y0
	length := math.Hypot(dx, dy)
	if length == 0 {
		return
	}
	ux, uy := dx/length, dy/length
	period := float64(somDash + somGap)
	// Skip the dashes before the image: along the line, the image starts
	// at most max(w, h) + |start outside| away.
	first := 0.0
	if skip := outsideBy(img.Bounds(), x0, y0) - somDash; skip > 0 {
		first = math.Floor(skip/period) * period
	}
	limit := first + float64(img.Bounds().Dx()+img.Bounds().Dy()) + 2*period
	for s := first; s < length && s < limit; s += period {
		e := math.Min(s+somDash, length)
		thickSegment(img, math.Round(x0+ux*s), math.Round(y0+uy*s), math.Round(x0+ux*e), math.Round(y0+uy*e))
	}
}

// outsideBy is how far (x, y) lies outside r along either axis (0 inside).
func outsideBy(r image.Rectangle, x, y float64) float64 {
	d := 0.0
	if x < float64(r.Min.X) {
		d = math.Max(d, float64(r.Min.X)-x)
	} else if x > float64(r.Max.X) {
		d = math.Max(d, x-float64(r.Max.X))
	}
	if y < float64(r.Min.Y) {
		d = math.Max(d, float64(r.Min.Y)-y)
	} else if y > float64(r.Max.Y) {
		d = math.Max(d, y-float64(r.Max.Y))
	}
	return d
}

// thickSegment fills the segment's pixels widened to somLineWidth across
// it (one pixel before the line, one on it), clipped to the image.
func thickSegment(img draw.Image, xa, ya, xb, yb float64) {
	lo := func(a, b float64) int { return int(math.Min(a, b)) }
	hi := func(a, b float64) int { return int(math.Max(a, b)) }
	var r image.Rectangle
	if ya == yb { // horizontal
		r = image.Rect(lo(xa, xb), int(ya)-somLineWidth/2, hi(xa, xb)+1, int(ya)-somLineWidth/2+somLineWidth)
	} else {
		r = image.Rect(int(xa)-somLineWidth/2, lo(ya, yb), int(xa)-somLineWidth/2+somLineWidth, hi(ya, yb)+1)
	}
	draw.Draw(img, r.Intersect(img.Bounds()), &image.Uniform{somInk}, image.Point{}, draw.Src)
}

// tagSize is the size of a bid's tag: the text plus margin and outline on
// each side, as BrowserGym sizes it.
func tagSize(bid string) (w, h int) {
	n := len([]rune(bid))
	textW := max(0, n*glyphAdvance-1)
	pad := 2 * (somTagMargin + 1)
	return textW + pad, glyphH + pad
}

// drawTag pastes bid's tag with its top left at (x, y - h/2 + 4), rounded,
// where BrowserGym pastes it.
func drawTag(img draw.Image, bid string, x, y float64) {
	w, h := tagSize(bid)
	px, py := int(math.Round(x)), int(math.Round(y-float64(h)/2+4))
	tag := image.Rect(px, py, px+w, py+h)
	bounds := img.Bounds()
	if !tag.Overlaps(bounds) {
		return
	}
	draw.Draw(img, tag.Intersect(bounds), &image.Uniform{somTxt}, image.Point{}, draw.Src)
	draw.Draw(img, tag.Inset(1).Intersect(bounds), &image.Uniform{somInk}, image.Point{}, draw.Src)
	cx := px + somTagMargin + 1
	for _, r := range bid {
		if cx >= bounds.Max.X {
			break // the rest of a long bid is off the image
		}
		g := somGlyph(r)
		for row := range glyphH {
			for col := range glyphW {
				if g[row]&(1<<(glyphW-1-col)) != 0 {
					if p := image.Pt(cx+col, py+somTagMargin+1+row); p.In(bounds) {
						img.Set(p.X, p.Y, somTxt)
					}
				}
			}
		}
		cx += glyphAdvance
	}
}
