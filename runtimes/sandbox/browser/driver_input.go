package browser

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// runElementCall runs the calls that act on the page's content: by bid,
// by coordinates or through the keyboard.
func (b *Browser) runElementCall(ctx context.Context, t *tab, c Call) error {
	bid := c.Str("bid")
	switch c.Name {
	case "click", "dblclick":
		return t.clickBid(ctx, c.Name, bid, c.Str("button"), c.Strs("modifiers"))
	case "hover":
		bx, err := visibleBox(ctx, "hover", bid)
		if err != nil {
			return err
		}
		return t.mouse(ctx, input.DispatchMouseEventTypeMouseMoved, bx.X, bx.Y, "", 0, 0)
	case "focus":
		_, err := elementOp(ctx, "focus", map[string]any{"bid": bid})
		return err
	case "fill", "clear":
		return t.fill(ctx, bid, c.Str("value"), c.Bool("enable_autocomplete_menu"))
	case "select_option":
		_, err := elementOp(ctx, "select", map[string]any{"bid": bid, "options": c.Strs("options")})
		return err
	case "press":
		if _, err := elementOp(ctx, "focus", map[string]any{"bid": bid}); err != nil {
			return err
		}
		return t.pressCombo(ctx, c.Str("key_comb"))
	case "drag_and_drop":
		return t.dragBids(ctx, c.Str("from_bid"), c.Str("to_bid"))
	case "upload_file":
		return b.uploadFiles(ctx, t, bid, c.Strs("file"))
	case "scroll":
		return t.wheel(ctx, t.mouseX, t.mouseY, c.Float("delta_x"), c.Float("delta_y"))
	case "scroll_at":
		return t.wheel(ctx, c.Float("x"), c.Float("y"), c.Float("dx"), c.Float("dy"))
	}
	return b.runCoordCall(ctx, t, c)
}

// runCoordCall runs the coordinate and keyboard calls.
func (b *Browser) runCoordCall(ctx context.Context, t *tab, c Call) error {
	x, y, btn := c.Float("x"), c.Float("y"), c.Str("button")
	switch c.Name {
	case "mouse_move":
		return t.mouse(ctx, input.DispatchMouseEventTypeMouseMoved, x, y, "", 0, 0)
	case "mouse_down":
		return t.mouse(ctx, input.DispatchMouseEventTypeMousePressed, x, y, btn, 1, 0)
	case "mouse_up":
		return t.mouse(ctx, input.DispatchMouseEventTypeMouseReleased, x, y, btn, 1, 0)
	case "mouse_click":
		return t.clickAt(ctx, x, y, btn, 1, 0)
	case "mouse_dblclick":
		return t.clickAt(ctx, x, y, btn, 2, 0)
	case "mouse_drag_and_drop":
		return chromedp.Do(ctx, chromedp.DragAndDropXY(c.Float("from_x"), c.Float("from_y"), c.Float("to_x"), c.Float("to_y")))
	case "mouse_upload_file":
		abs, err := b.absFiles(c.Strs("file"))
		if err != nil {
			return err
		}
		what := fmt.Sprintf("at (%g, %g)", x, y)
		return t.uploadViaChooser(ctx, what, abs, func() error { return t.clickAt(ctx, x, y, "left", 1, 0) })
	case "keyboard_press":
		return t.pressCombo(ctx, c.Str("key"))
	case "keyboard_down", "keyboard_up":
		k, err := lookupKey(c.Str("key"))
		if err != nil {
			return err
		}
		typ := input.DispatchKeyEventTypeKeyDown
		if c.Name == "keyboard_up" {
			typ = input.DispatchKeyEventTypeKeyUp
		}
		p := keyParams(k, typ, 0)
		_, err = chromedp.Call(ctx, input.DispatchKeyEvent, p)
		return err
	case "keyboard_type":
		return chromedp.Do(ctx, chromedp.KeyEvent(c.Str("text")))
	case "keyboard_insert_text":
		_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: c.Str("text")})
		return err
	}
	return &actionFailure{kind: "NameError", msg: fmt.Sprintf("the browser action %q is not supported by Corral's browser", c.Name)}
}

// visibleBox locates bid and checks it can take pointer input, with the
// action's name in the error.
func visibleBox(ctx context.Context, action, bid string) (elemBox, error) {
	bx, err := locateBid(ctx, bid)
	if err != nil {
		return bx, err
	}
	if !bx.Visible {
		return bx, &actionFailure{kind: "Error", msg: fmt.Sprintf("Locator.%s: element with bid %q is not visible (zero size, display:none or visibility:hidden); scroll or open what hides it first", action, bid)}
	}
	return bx, nil
}

// clickBid clicks (or double-clicks) the centre of the element of bid.
func (t *tab) clickBid(ctx context.Context, action, bid, button string, mods []string) error {
	bx, err := visibleBox(ctx, action, bid)
	if err != nil {
		return err
	}
	if bx.Disabled {
		return &actionFailure{kind: "Error", msg: fmt.Sprintf("Locator.%s: element with bid %q is disabled", action, bid)}
	}
	m, err := modifierMask(mods)
	if err != nil {
		return err
	}
	n := 1
	if action == "dblclick" {
		n = 2
	}
	return t.clickAt(ctx, bx.X, bx.Y, button, n, m)
}

// clickAt moves the mouse to (x, y) and clicks n times, as Playwright's
// click and dblclick.
func (t *tab) clickAt(ctx context.Context, x, y float64, button string, n int, mods int64) error {
	if err := t.mouse(ctx, input.DispatchMouseEventTypeMouseMoved, x, y, "", 0, mods); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		if err := t.mouse(ctx, input.DispatchMouseEventTypeMousePressed, x, y, button, int64(i), mods); err != nil {
			return err
		}
		if err := t.mouse(ctx, input.DispatchMouseEventTypeMouseReleased, x, y, button, int64(i), mods); err != nil {
			return err
		}
	}
	return nil
}

// mouse dispatches one mouse event and remembers where the mouse is.
func (t *tab) mouse(ctx context.Context, typ input.DispatchMouseEventType, x, y float64, button string, clicks, mods int64) error {
	p := input.DispatchMouseEventParams{Type: typ, X: x, Y: y, Modifiers: mods, ClickCount: clicks}
	if button != "" {
		p.Button = input.MouseButton(button)
		if typ == input.DispatchMouseEventTypeMousePressed {
			p.Buttons = map[string]int64{"left": 1, "right": 2, "middle": 4}[button]
		}
	}
	if _, err := chromedp.Call(ctx, input.DispatchMouseEvent, p); err != nil {
		return fmt.Errorf("mouse %s at (%.0f, %.0f): %w", typ, x, y, err)
	}
	t.mouseX, t.mouseY = x, y
	return nil
}

// wheel scrolls by (dx, dy) pixels at (x, y) and waits for the page to
// paint, since wheel scrolling is asynchronous.
func (t *tab) wheel(ctx context.Context, x, y, dx, dy float64) error {
	p := wheelParams{Type: input.DispatchMouseEventTypeMouseWheel, X: x, Y: y, DeltaX: dx, DeltaY: dy}
	if _, err := chromedp.Call(ctx, dispatchWheel, p); err != nil {
		return fmt.Errorf("scroll by (%g, %g): %w", dx, dy, err)
	}
	t.mouseX, t.mouseY = x, y
	_, err := evalJS[bool](ctx, nextFrames)
	return err
}

// wheelParams is Input.dispatchMouseEvent's params for a wheel event:
// cdproto's type omits a zero delta, which Chromium rejects ("'deltaX' and
// 'deltaY' are expected"), so scroll(0, 200) needs its own type.
type wheelParams struct {
	Type   input.DispatchMouseEventType `json:"type"`
	X      float64                      `json:"x"`
	Y      float64                      `json:"y"`
	DeltaX float64                      `json:"deltaX"`
	DeltaY float64                      `json:"deltaY"`
}

var dispatchWheel = cdp.Command[wheelParams, cdp.Empty]{Method: input.CommandDispatchMouseEvent}

// nextFrames resolves after two animation frames: input and scrolling
// have been applied and painted by then.
//
// A hidden page gets no animation frames, so a timer ends the wait too.
const nextFrames = `new Promise(r => {
	const done = () => r(true);
	requestAnimationFrame(() => requestAnimationFrame(done));
	setTimeout(done, 200);
})`

// fill types value over a field's content as Playwright's fill does
// (clear when value is empty). With autocomplete, the last character is
// typed as a key press so that the page's autocomplete menu opens, as
// BrowserGym's fill(..., enable_autocomplete_menu=True).
func (t *tab) fill(ctx context.Context, bid, value string, autocomplete bool) error {
	r, err := elementOp(ctx, "fill", map[string]any{"bid": bid, "value": value})
	if err != nil || r.Done {
		return err
	}
	if value == "" {
		return t.pressCombo(ctx, "Delete")
	}
	last := ""
	if autocomplete {
		_, n := utf8.DecodeLastRuneInString(value)
		value, last = value[:len(value)-n], value[len(value)-n:]
	}
	if value != "" {
		if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: value}); err != nil {
			return err
		}
	}
	if last != "" {
		return chromedp.Do(ctx, chromedp.KeyEvent(last))
	}
	return nil
}

// dragBids drags the element of from onto the element of to.
func (t *tab) dragBids(ctx context.Context, from, to string) error {
	fb, err := visibleBox(ctx, "drag_and_drop", from)
	if err != nil {
		return err
	}
	tb, err := visibleBox(ctx, "drag_and_drop", to)
	if err != nil {
		return err
	}
	// Locating to may have scrolled from; read it again.
	if fb, err = locateBidNoScroll(ctx, from); err != nil {
		return err
	}
	return chromedp.Do(ctx, chromedp.DragAndDropXY(fb.X, fb.Y, tb.X, tb.Y))
}

// modifierMask turns BrowserGym modifier names into CDP's bit field.
func modifierMask(mods []string) (int64, error) {
	var m int64
	for _, name := range mods {
		switch name {
		case "Alt":
			m |= int64(kb.ModifierAlt)
		case "Control", "ControlOrMeta":
			m |= int64(kb.ModifierCtrl)
		case "Meta":
			m |= int64(kb.ModifierMeta)
		case "Shift":
			m |= int64(kb.ModifierShift)
		default:
			return 0, &actionFailure{kind: "ValueError", msg: fmt.Sprintf("unknown modifier %q; use Alt, Control, ControlOrMeta, Meta or Shift", name)}
		}
	}
	return m, nil
}

// pressCombo presses a key combination such as "Enter", "Control+a" or
// "Meta+Shift+t": modifiers go down, the key is pressed, modifiers go up.
func (t *tab) pressCombo(ctx context.Context, combo string) error {
	parts := splitCombo(combo)
	if len(parts) == 0 {
		return &actionFailure{kind: "Error", msg: fmt.Sprintf("Keyboard.press: empty key combination %q", combo)}
	}
	keys := make([]*kb.Key, len(parts))
	for i, p := range parts {
		k, err := lookupKey(p)
		if err != nil {
			return err
		}
		keys[i] = k
	}
	var mods int64
	for _, k := range keys[:len(keys)-1] {
		mods |= modifierBit(k.Key)
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, keyParams(k, input.DispatchKeyEventTypeRawKeyDown, mods)); err != nil {
			return err
		}
	}
	main := keys[len(keys)-1]
	down := keyParams(main, input.DispatchKeyEventTypeKeyDown, mods)
	if mods&^int64(kb.ModifierShift) != 0 || !main.Print {
		down.Type, down.Text, down.UnmodifiedText = input.DispatchKeyEventTypeRawKeyDown, "", ""
	}
	steps := []input.DispatchKeyEventParams{down, keyParams(main, input.DispatchKeyEventTypeKeyUp, mods)}
	for i := len(keys) - 2; i >= 0; i-- {
		mods &^= modifierBit(keys[i].Key)
		steps = append(steps, keyParams(keys[i], input.DispatchKeyEventTypeKeyUp, mods))
	}
	for _, p := range steps {
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, p); err != nil {
			return fmt.Errorf("press %q: %w", combo, err)
		}
	}
	return nil
}

// splitCombo splits on "+", keeping a "+" key ("Shift++" is Shift and +).
func splitCombo(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i > start {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func modifierBit(key string) int64 {
	switch key {
	case "Alt":
		return int64(kb.ModifierAlt)
	case "Control":
		return int64(kb.ModifierCtrl)
	case "Meta":
		return int64(kb.ModifierMeta)
	case "Shift":
		return int64(kb.ModifierShift)
	}
	return 0
}

// lookupKey finds a key by Playwright's names: a single character, a key
// value (Enter, ArrowDown, Control, F5...), a code (KeyA, Digit0,
// Backquote...) or an alias (ControlOrMeta, ShiftLeft...).
func lookupKey(name string) (*kb.Key, error) {
	switch name {
	case "ControlOrMeta", "ControlLeft", "ControlRight":
		name = "Control"
	case "ShiftLeft", "ShiftRight":
		name = "Shift"
	case "AltLeft", "AltRight":
		name = "Alt"
	case "MetaLeft", "MetaRight", "Command":
		name = "Meta"
	case "Space":
		name = " "
	}
	if utf8.RuneCountInString(name) == 1 {
		r, _ := utf8.DecodeRuneInString(name)
		if k, ok := kb.Keys[r]; ok {
			return k, nil
		}
		return &kb.Key{Key: name, Text: name, Unmodified: name, Print: true}, nil
	}
	var byCode *kb.Key
	for _, k := range kb.Keys {
		if k.Key == name {
			return k, nil
		}
		if k.Code == name && !k.Shift {
			byCode = k
		}
	}
	if byCode != nil {
		return byCode, nil
	}
	return nil, &actionFailure{kind: "Error", msg: fmt.Sprintf("Keyboard.press: Unknown key: %q (use a character such as \"a\", a key name such as Enter, Backspace, ArrowDown, F5, or a code such as KeyA; join modifiers with +, e.g. Control+a)", name)}
}

// keyParams is one key event of k with the modifiers held.
func keyParams(k *kb.Key, typ input.DispatchKeyEventType, mods int64) input.DispatchKeyEventParams {
	p := input.DispatchKeyEventParams{
		Type: typ, Modifiers: mods, Key: k.Key, Code: k.Code,
		WindowsVirtualKeyCode: k.Windows, NativeVirtualKeyCode: k.Native,
	}
	if typ == input.DispatchKeyEventTypeKeyDown && k.Print {
		text := k.Text
		if mods&int64(kb.ModifierShift) != 0 {
			text = strings.ToUpper(text)
		}
		p.Text, p.UnmodifiedText = text, k.Unmodified
	}
	return p
}
