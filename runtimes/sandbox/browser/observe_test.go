package browser

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// paintPage has a big panel that a click turns green: the click's visible
// effect, for the screenshot taken right after it.
const paintPage = `<html><body style="margin:0;background:#fff">
<button id="paint" style="position:absolute;left:20px;top:20px;width:120px;height:40px"
  onclick="document.getElementById('panel').style.background='rgb(0, 200, 0)'">Paint</button>
<div id="panel" style="position:absolute;left:200px;top:100px;width:300px;height:200px;background:rgb(200, 0, 0)"></div>
</body></html>`

func TestScreenshotShowsTheClicksEffectAndMarksAreDrawnOnIt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, paintPage)
	}))
	t.Cleanup(srv.Close)
	b, _ := testBrowser(t)
	red, green := color.RGBA{200, 0, 0, 255}, color.RGBA{0, 200, 0, 255}
	r := mustOK(t, b, fmt.Sprintf("goto(%q)", srv.URL))
	if c := decodeImage(t, decodePNG(t, "screenshot", r.Obs.Screenshot)).At(350, 200); !isColor(c, red) {
		t.Fatalf("before the click the panel is %v, want red %v", c, red)
	}
	paint := bid(t, b, "#paint")
	// Several clicks: each observation must show its own action's effect,
	// never a frame from before it (the panel toggles red/green).
	for i := range 3 {
		want, next := green, "rgb(200, 0, 0)"
		if i%2 == 1 {
			want, next = red, "rgb(0, 200, 0)"
		}
		r = mustOK(t, b, fmt.Sprintf("click(%q)", paint))
		shot := decodePNG(t, "screenshot", r.Obs.Screenshot)
		if c := decodeImage(t, shot).At(350, 200); !isColor(c, want) {
			t.Fatalf("click %d: the panel in the screenshot is %v, want %v (the screenshot predates the click)", i, c, want)
		}
		som := decodeImage(t, decodePNG(t, "set_of_marks", r.Obs.SetOfMarks))
		if c := som.At(350, 200); !isColor(c, want) {
			t.Fatalf("click %d: set_of_marks is not drawn on the same screenshot: panel %v, want %v", i, c, want)
		}
		// The button (20,20 120x40) is marked: its box's left edge is
		// dashed from the bottom up, starting with a black dash.
		if c := som.At(20, 58); !isColor(c, somInk) {
			t.Errorf("click %d: no dashed box at the button's left edge in set_of_marks: %v", i, c)
		}
		if c := decodeImage(t, shot).At(20, 58); isColor(c, somInk) {
			t.Errorf("click %d: the plain screenshot has marks drawn on it", i)
		}
		if os.Getenv("CORRAL_KEEP_SOM") != "" {
			_ = os.WriteFile(fmt.Sprintf("%s/som-%d.png", os.Getenv("CORRAL_KEEP_SOM"), i), decodePNG(t, "set_of_marks", r.Obs.SetOfMarks), 0o644)
		}
		evalActive[string](t, b, fmt.Sprintf(`document.getElementById('paint').setAttribute('onclick', "document.getElementById('panel').style.background='%s'") || ""`, next))
	}
	if bytes.Equal(decodePNG(t, "screenshot", r.Obs.Screenshot), decodePNG(t, "set_of_marks", r.Obs.SetOfMarks)) {
		t.Error("set_of_marks equals the screenshot")
	}
}
