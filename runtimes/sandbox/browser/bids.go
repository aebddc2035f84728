package browser

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// bidsJS is the in-page helper: (op, arg) => result. See bids.js.
//
//go:embed bids.js
var bidsJS string

// bidAttr is the attribute that holds an element's bid (BrowserGym's
// BROWSERGYM_ID_ATTRIBUTE).
const bidAttr = "bid"

// elemProps is BrowserGym's extra_element_properties entry of one bid.
type elemProps struct {
	Visibility float64    `json:"visibility"`
	BBox       [4]float64 `json:"bbox"`
	Clickable  bool       `json:"clickable"`
	SetOfMarks bool       `json:"set_of_marks"`
}

// elemBox is where an element is and what it is, after scrolling it into
// view: its centre in viewport coordinates of the top frame.
type elemBox struct {
	X        float64 `json:"x"`
	Y        float64 `json:"y"`
	W        float64 `json:"w"`
	H        float64 `json:"h"`
	Tag      string  `json:"tag"`
	Type     string  `json:"type"`
	Visible  bool    `json:"visible"`
	Disabled bool    `json:"disabled"`
	Error    string  `json:"error"`
}

// jsResult is the answer of the element operations of bids.js.
type jsResult struct {
	Error   string `json:"error"`
	Done    bool   `json:"done"`
	Checked bool   `json:"checked"`
}

// helperExpr is a JS expression calling bids.js's function with op and arg.
func helperExpr(op string, arg any) (string, error) {
	a, err := json.Marshal(arg)
	if err != nil {
		return "", fmt.Errorf("encode the arguments of %s: %w", op, err)
	}
	o, _ := json.Marshal(op)
	return "(" + bidsJS + ")(" + string(o) + ", " + string(a) + ")", nil
}

// helper runs one operation of bids.js on the tab of ctx and decodes its
// JSON result into T.
func helper[T any](ctx context.Context, op string, arg any) (T, error) {
	var zero T
	expr, err := helperExpr(op, arg)
	if err != nil {
		return zero, err
	}
	v, err := evalJS[T](ctx, expr)
	if err != nil {
		return zero, fmt.Errorf("in-page helper %s: %w", op, err)
	}
	return v, nil
}

// evalJS evaluates expr in the tab of ctx, awaiting a promise, and decodes
// the value into T.
func evalJS[T any](ctx context.Context, expr string) (T, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// markBids gives every element of the page a bid (keeping the ones it
// has) and returns their extra_element_properties.
func markBids(ctx context.Context) (map[string]elemProps, error) {
	return helper[map[string]elemProps](ctx, "mark", struct{}{})
}

// locateBid scrolls the element of bid into view and returns its box. A
// bid that does not exist gives BrowserGym's ValueError text.
func locateBid(ctx context.Context, bid string) (elemBox, error) { return boxOf(ctx, "box", bid) }

// locateBidNoScroll is locateBid without scrolling.
func locateBidNoScroll(ctx context.Context, bid string) (elemBox, error) {
	return boxOf(ctx, "peek", bid)
}

func boxOf(ctx context.Context, op, bid string) (elemBox, error) {
	bx, err := helper[elemBox](ctx, op, map[string]string{"bid": bid})
	if err != nil {
		return elemBox{}, err
	}
	if bx.Error != "" {
		return elemBox{}, &actionFailure{kind: "ValueError", msg: bx.Error}
	}
	return bx, nil
}

// elementOp runs an element operation of bids.js (focus, fill, select,
// checked) and turns its {error} answer into an action failure.
func elementOp(ctx context.Context, op string, arg map[string]any) (jsResult, error) {
	r, err := helper[jsResult](ctx, op, arg)
	if err != nil {
		return r, err
	}
	if r.Error != "" {
		if strings.HasPrefix(r.Error, "Error: ") {
			return r, &actionFailure{msg: r.Error}
		}
		return r, &actionFailure{kind: "ValueError", msg: r.Error}
	}
	return r, nil
}

// elementObject returns a remote object id for the element of bid, for
// commands that take a node (DOM.setFileInputFiles).
func elementObject(ctx context.Context, bid string) (runtime.RemoteObjectID, error) {
	expr, err := helperExpr("element", map[string]string{"bid": bid})
	if err != nil {
		return "", err
	}
	res, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: expr})
	if err != nil {
		return "", fmt.Errorf("find the element of bid %q: %w", bid, err)
	}
	if res.ExceptionDetails != nil {
		msg := res.ExceptionDetails.Text
		if res.ExceptionDetails.Exception != nil && res.ExceptionDetails.Exception.Description != "" {
			msg = res.ExceptionDetails.Exception.Description
		}
		return "", &actionFailure{kind: "ValueError", msg: firstLine(strings.TrimPrefix(msg, "Error: "))}
	}
	if res.Result == nil || res.Result.ObjectID == "" {
		return "", &actionFailure{kind: "ValueError", msg: fmt.Sprintf("Could not find element with bid %q", bid)}
	}
	return res.Result.ObjectID, nil
}

// readDOM returns the whole document, shadow roots and same-process
// frames included, and maps each element's backend node id to its bid
// (for the accessibility tree).
func readDOM(ctx context.Context) (*cdp.Node, map[cdp.BackendNodeID]string, error) {
	depth := int64(-1)
	pierce := true
	doc, err := chromedp.Call(ctx, dom.GetDocument, dom.GetDocumentParams{Depth: &depth, Pierce: &pierce})
	if err != nil {
		return nil, nil, fmt.Errorf("read the DOM: %w", err)
	}
	out := map[cdp.BackendNodeID]string{}
	var walk func(n *cdp.Node)
	walk = func(n *cdp.Node) {
		if n == nil {
			return
		}
		for i := 0; i+1 < len(n.Attributes); i += 2 {
			if n.Attributes[i] == bidAttr {
				out[n.BackendNodeID] = n.Attributes[i+1]
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
		for _, c := range n.ShadowRoots {
			walk(c)
		}
		walk(n.ContentDocument)
		walk(n.TemplateContent)
	}
	walk(doc.Root)
	return doc.Root, out, nil
}

// focusedBid is the bid of the focused element, through shadow roots and
// same-origin frames, or "".
func focusedBid(ctx context.Context) (string, error) {
	return helper[string](ctx, "focused", struct{}{})
}

// firstLine is s up to its first newline (a JS exception's description
// carries its stack after it).
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
