package browser

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"testing"
)

// whitePNG is a w x h white PNG, a stand-in for a blank page screenshot.
func whitePNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeImage(t testing.TB, data []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	return img
}

func isColor(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	return uint8(r>>8) == want.R && uint8(g>>8) == want.G && uint8(b>>8) == want.B
}

func TestSetOfMarksDrawsDashedBoxesAndTagsLikeBrowserGym(t *testing.T) {
	white := color.RGBA{255, 255, 255, 255}
	props := map[string]elemProps{
		"12":   {BBox: [4]float64{100, 50, 80, 30}, SetOfMarks: true},
		"7":    {BBox: [4]float64{300, 300, 80, 30}, SetOfMarks: false},
		"9":    {BBox: [4]float64{400, 300, 4, 4}, SetOfMarks: true}, // area 16 < 20
		"aB3":  {BBox: [4]float64{500, 200, 60, 40}, SetOfMarks: true},
		"nan":  {BBox: [4]float64{math.NaN(), 0, 10, 10}, SetOfMarks: true},
		"huge": {BBox: [4]float64{-1e6, -1e6, 3e6, 3e6}, SetOfMarks: true},
	}
	out, err := drawSetOfMarks(whitePNG(t, 640, 400), props, 640)
	if err != nil {
		t.Fatal(err)
	}
	img := decodeImage(t, out)
	if img.Bounds() != image.Rect(0, 0, 640, 400) {
		t.Fatalf("size %v, want the screenshot's 640x400", img.Bounds())
	}
	tests := []struct {
		name string
		x, y int
		want color.RGBA
	}{
		{"the top edge is dashed from the left: a dash", 125, 50, somInk},
		{"the top edge leaves an 8px gap after a 4px dash", 131, 50, white},
		{"the top edge's next dash, 2px thick", 137, 49, somInk},
		{"the bottom edge is dashed from the right", 179, 80, somInk},
		{"the bottom edge's gap", 172, 80, white},
		{"the right edge is dashed from the top", 180, 52, somInk},
		{"the right edge's gap", 180, 58, white},
		{"the tag's outline is white", 101, 48, somTxt},
		{"the tag's inside is black", 102, 49, somInk},
		{"the tag's text is white: top of '1'", 105, 51, somTxt},
		{"left of the '1' stroke is background", 103, 51, somInk},
		{"an element not in set_of_marks gets no box", 300, 300, white},
		{"a box under 20 px² is skipped", 400, 300, white},
		{"a frame-prefixed bid gets a tag too", 501, 198, somTxt},
		{"the inside of a marked box is left alone", 140, 65, white},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if c := img.At(tc.x, tc.y); !isColor(c, tc.want) {
				t.Errorf("pixel (%d, %d) is %v, want %v", tc.x, tc.y, c, tc.want)
			}
		})
	}
}

func TestSetOfMarksScalesCSSPixelsToTheScreenshot(t *testing.T) {
	props := map[string]elemProps{"3": {BBox: [4]float64{100, 100, 50, 50}, SetOfMarks: true}}
	out, err := drawSetOfMarks(whitePNG(t, 400, 400), props, 200) // device pixel ratio 2
	if err != nil {
		t.Fatal(err)
	}
	img := decodeImage(t, out)
	if c := img.At(201, 400-1); !isColor(c, color.RGBA{255, 255, 255, 255}) {
		t.Errorf("the bottom edge at 1:1 (y=150) would not reach here; got %v", c)
	}
	if c := img.At(201, 299); !isColor(c, somInk) {
		t.Errorf("the bottom edge is at y=300 on a 2x screenshot; pixel (201, 299) is %v", c)
	}
}

func TestSetOfMarksRejectsABadScreenshot(t *testing.T) {
	_, err := drawSetOfMarks([]byte("not a png"), map[string]elemProps{}, 0)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("decode the page screenshot")) {
		t.Fatalf("err = %v, want a decode error naming the screenshot", err)
	}
}

// FuzzSetOfMarks draws arbitrary boxes and bids: it must never panic and
// always return a PNG of the screenshot's size.
func FuzzSetOfMarks(f *testing.F) {
	f.Add("12", 10.0, 10.0, 50.0, 20.0, 0.0)
	f.Add("aB12", -30.0, -5.0, 1e9, 4.0, 64.0)
	f.Add("", math.Inf(1), math.NaN(), -5.0, -5.0, -1.0)
	f.Add("ünï©ode", 60.0, 60.0, 10.0, 10.0, 1e-9)
	shot := whitePNG(f, 64, 48)
	f.Fuzz(func(t *testing.T, bid string, x, y, w, h, vw float64) {
		props := map[string]elemProps{bid: {BBox: [4]float64{x, y, w, h}, SetOfMarks: true}}
		out, err := drawSetOfMarks(shot, props, vw)
		if err != nil {
			t.Fatal(err)
		}
		if b := decodeImage(t, out).Bounds(); b != image.Rect(0, 0, 64, 48) {
			t.Fatalf("size %v", b)
		}
	})
}

func TestSetOfMarksDrawsOnEveryPNGColourModel(t *testing.T) {
	props := map[string]elemProps{"5": {BBox: [4]float64{10, 20, 30, 20}, SetOfMarks: true}}
	models := map[string]image.Image{
		"translucent NRGBA": image.NewNRGBA(image.Rect(0, 0, 60, 50)),
		"grey":              image.NewGray(image.Rect(0, 0, 60, 50)),
		"paletted without black": image.NewPaletted(image.Rect(0, 0, 60, 50),
			color.Palette{color.RGBA{200, 0, 0, 255}, color.RGBA{0, 0, 200, 255}}),
	}
	for name, src := range models {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := png.Encode(&buf, src); err != nil {
				t.Fatal(err)
			}
			out, err := drawSetOfMarks(buf.Bytes(), props, 0)
			if err != nil {
				t.Fatal(err)
			}
			img := decodeImage(t, out)
			// Tag at (10, round(20-6.5+4)=18): white outline, black inside.
			if c := img.At(10, 18); !isColor(c, somTxt) {
				t.Errorf("tag outline is %v, want white", c)
			}
			if c := img.At(11, 19); !isColor(c, somInk) {
				t.Errorf("tag inside is %v, want black", c)
			}
		})
	}
}
