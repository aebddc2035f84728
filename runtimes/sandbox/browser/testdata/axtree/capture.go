//go:build ignore

// capture.go records the fixtures of axtree_test.go and htmltext_test.go
// from a real headless Chromium: for each *.html in this directory it
// writes <name>.json with the page's Accessibility.getFullAXTree nodes,
// the bids (every element numbered in DOM order from 0, as BrowserGym's
// marking does), the bids Chromium's DOMSnapshot reports as clickable, and
// the DOM.getDocument tree (depth -1). Run it from the package directory:
//
//	go run ./testdata/axtree/capture.go
//
// then regenerate the expected .txt files with bg_flatten.py (see there).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/domsnapshot"
	"github.com/chromedp/chromedp"
)

// fixture keeps Chromium's answers as raw JSON: decoding and encoding
// them again would drop empty values ("value": "") that BrowserGym reads.
type fixture struct {
	Source    string                       `json:"source"`
	Chromium  string                       `json:"chromium"`
	AXTree    jsonv2.Value                 `json:"axtree"` // Accessibility.getFullAXTree's result
	Bids      map[cdp.BackendNodeID]string `json:"bids"`
	Clickable []string                     `json:"clickable"`
	DOM       jsonv2.Value                 `json:"dom"` // DOM.getDocument's result
}

var (
	rawAXTree   = cdp.Command[accessibility.GetFullAXTreeParams, jsonv2.Value]{Method: accessibility.CommandGetFullAXTree}
	rawDocument = cdp.Command[dom.GetDocumentParams, jsonv2.Value]{Method: dom.CommandGetDocument}
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "capture:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := "testdata/axtree"
	pages, err := filepath.Glob(filepath.Join(dir, "*.html"))
	if err != nil || len(pages) == 0 {
		return fmt.Errorf("no pages in %s (run from the package directory): %v", dir, err)
	}
	version, _ := exec.Command("chromium", "--version").Output()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath("chromium"), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 720))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelT()
	for _, p := range pages {
		abs, _ := filepath.Abs(p)
		f, err := capture(ctx, "file://"+abs)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		f.Source, f.Chromium = filepath.Base(p), strings.TrimSpace(string(version))
		raw, err := jsonv2.Marshal(f)
		if err != nil {
			return err
		}
		var pretty strings.Builder
		var v any
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return err
		}
		enc := json.NewEncoder(&pretty)
		enc.SetIndent("", " ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return err
		}
		out := strings.TrimSuffix(p, ".html") + ".json"
		if err := os.WriteFile(out, []byte(pretty.String()), 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", out)
	}
	return nil
}

func capture(ctx context.Context, url string) (*fixture, error) {
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return nil, err
	}
	// The tree is read first: once DOM or DOMSnapshot ran, Chromium adds
	// InlineTextBox nodes to it, which a plain read does not show.
	ax, err := chromedp.Call(ctx, rawAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		return nil, err
	}
	depth, pierce := int64(-1), true
	params := dom.GetDocumentParams{Depth: &depth, Pierce: &pierce}
	doc, err := chromedp.Call(ctx, dom.GetDocument, params)
	if err != nil {
		return nil, err
	}
	f := &fixture{Bids: map[cdp.BackendNodeID]string{}, AXTree: ax}
	if f.DOM, err = chromedp.Call(ctx, rawDocument, params); err != nil {
		return nil, err
	}
	var walk func(n *cdp.Node)
	walk = func(n *cdp.Node) {
		if n.NodeType == 1 {
			f.Bids[n.BackendNodeID] = strconv.Itoa(len(f.Bids))
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(doc.Root)
	snap, err := chromedp.Call(ctx, domsnapshot.CaptureSnapshot, domsnapshot.CaptureSnapshotParams{ComputedStyles: []string{}})
	if err != nil {
		return nil, err
	}
	if len(snap.Documents) > 0 && snap.Documents[0].Nodes.IsClickable != nil {
		ids := snap.Documents[0].Nodes.BackendNodeID
		for _, i := range snap.Documents[0].Nodes.IsClickable.Index {
			if bid, ok := f.Bids[ids[i]]; ok {
				f.Clickable = append(f.Clickable, bid)
			}
		}
	}
	return f, nil
}
