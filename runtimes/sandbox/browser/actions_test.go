package browser

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseActionsEveryAction(t *testing.T) {
	// One example per action, taken from BrowserGym's docstrings where
	// they exist, with the fully bound argument list Corral hands the driver.
	tests := []struct {
		src  string
		name string
		args []any
	}{
		{`send_msg_to_user("Based on the results of my search, the city was built in 1751.")`, "send_msg_to_user",
			[]any{"Based on the results of my search, the city was built in 1751."}},
		{`report_infeasible("I cannot follow these instructions because there is no email field in this form.")`, "report_infeasible",
			[]any{"I cannot follow these instructions because there is no email field in this form."}},
		{`noop()`, "noop", []any{1000.0}},
		{`noop(500)`, "noop", []any{500.0}},
		{`scroll(0, 200)`, "scroll", []any{0.0, 200.0}},
		{`scroll(-50.2, -100.5)`, "scroll", []any{-50.2, -100.5}},
		{`fill('45', "multi-line\nexample")`, "fill", []any{"45", "multi-line\nexample", false}},
		{`fill('a12', "example with \"quotes\"")`, "fill", []any{"a12", `example with "quotes"`, false}},
		{`fill('b534', "Montre", True)`, "fill", []any{"b534", "Montre", true}},
		{`select_option('a48', "blue")`, "select_option", []any{"a48", []string{"blue"}}},
		{`select_option('c48', ["red", "green", "blue"])`, "select_option", []any{"c48", []string{"red", "green", "blue"}}},
		{`click('a51')`, "click", []any{"a51", "left", []string{}}},
		{`click('b22', button="right")`, "click", []any{"b22", "right", []string{}}},
		{`click('48', button="middle", modifiers=["Shift"])`, "click", []any{"48", "middle", []string{"Shift"}}},
		{`dblclick('12')`, "dblclick", []any{"12", "left", []string{}}},
		{`dblclick('178', button="middle", modifiers=["Shift", "ControlOrMeta"])`, "dblclick",
			[]any{"178", "middle", []string{"Shift", "ControlOrMeta"}}},
		{`hover('b8')`, "hover", []any{"b8"}},
		{`press('a26', 'ControlOrMeta+a')`, "press", []any{"a26", "ControlOrMeta+a"}},
		{`focus('b455')`, "focus", []any{"b455"}},
		{`clear('996')`, "clear", []any{"996"}},
		{`drag_and_drop('56', '498')`, "drag_and_drop", []any{"56", "498"}},
		{`upload_file("572", "my_receipt.pdf")`, "upload_file", []any{"572", []string{"my_receipt.pdf"}}},
		{`upload_file("63", ["/home/bob/a.jpg", "/home/bob/b.zip"])`, "upload_file", []any{"63", []string{"/home/bob/a.jpg", "/home/bob/b.zip"}}},
		{`upload_file("63", [])`, "upload_file", []any{"63", []string{}}},
		{`goto('http://www.example.com')`, "goto", []any{"http://www.example.com"}},
		{`go_back()`, "go_back", []any{}},
		{`go_forward()`, "go_forward", []any{}},
		{`new_tab()`, "new_tab", []any{}},
		{`tab_close()`, "tab_close", []any{}},
		{`tab_focus(2)`, "tab_focus", []any{2.0}},
		{`scroll_at(50, 100, -50, -100)`, "scroll_at", []any{50.0, 100.0, -50.0, -100.0}},
		{`mouse_move(65.2, 158.5)`, "mouse_move", []any{65.2, 158.5}},
		{`mouse_up(47, 252, 'right')`, "mouse_up", []any{47.0, 252.0, "right"}},
		{`mouse_down(140.2, 580.1)`, "mouse_down", []any{140.2, 580.1, "left"}},
		{`mouse_click(887.2, 68)`, "mouse_click", []any{887.2, 68.0, "left"}},
		{`mouse_dblclick(87.5, 354, 'right')`, "mouse_dblclick", []any{87.5, 354.0, "right"}},
		{`mouse_drag_and_drop(10.7, 325, 235.6, 24.54)`, "mouse_drag_and_drop", []any{10.7, 325.0, 235.6, 24.54}},
		{`mouse_upload_file(132.1, 547, "my_receipt.pdf")`, "mouse_upload_file", []any{132.1, 547.0, []string{"my_receipt.pdf"}}},
		{`keyboard_down('Shift')`, "keyboard_down", []any{"Shift"}},
		{`keyboard_up('c')`, "keyboard_up", []any{"c"}},
		{`keyboard_press('Meta+Shift+t')`, "keyboard_press", []any{"Meta+Shift+t"}},
		{`keyboard_type('Hello world!')`, "keyboard_type", []any{"Hello world!"}},
		{`keyboard_insert_text('Hello world!')`, "keyboard_insert_text", []any{"Hello world!"}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			calls, err := ParseActions(tt.src)
			if err != nil {
				t.Fatalf("ParseActions(%q): %v", tt.src, err)
			}
			want := []Call{{Name: tt.name, Args: tt.args, Src: tt.src}}
			if !reflect.DeepEqual(calls, want) {
				t.Fatalf("ParseActions(%q)\n got %#v\nwant %#v", tt.src, calls, want)
			}
		})
		seen[tt.name] = true
	}
	for _, name := range ActionNames() {
		if !seen[name] {
			t.Errorf("action %q has no test case", name)
		}
	}
}

func TestParseActionsKeywordsDefaultsAndQuoting(t *testing.T) {
	tests := []struct {
		name string
		src  string
		args []any
	}{
		{"keyword for a required parameter", `click(bid='3')`, []any{"3", "left", []string{}}},
		{"keywords in any order", `click(modifiers=["Alt"], bid="3", button='right')`, []any{"3", "right", []string{"Alt"}}},
		{"keyword skips a defaulted parameter", `click('3', modifiers=("Meta",))`, []any{"3", "left", []string{"Meta"}}},
		{"bool keyword", `fill('1', 'x', enable_autocomplete_menu=False)`, []any{"1", "x", false}},
		{"trailing comma", `fill('1', 'x',)`, []any{"1", "x", false}},
		{"spaces and newlines inside the call", "fill (\n  '1' ,\n  'x'  # the value\n)", []any{"1", "x", false}},
		{"single-quoted escapes", `fill('1', 'it\'s\ta\\b')`, []any{"1", "it's\ta\\b", false}},
		{"double quotes inside single", `fill('1', 'say "hi"')`, []any{"1", `say "hi"`, false}},
		{"triple double quotes keep raw newlines", "fill('1', \"\"\"line 1\nline \"2\" end\"\"\")", []any{"1", "line 1\nline \"2\" end", false}},
		{"triple single quotes", "fill('1', '''a\n'b'\n''')", []any{"1", "a\n'b'\n", false}},
		{"empty strings", `fill('', "")`, []any{"", "", false}},
		{"hex unicode and octal escapes", `fill('1', '\x41\u00e9\U0001F600\101\0')`, []any{"1", "Aé😀A\x00", false}},
		{"unknown escape keeps its backslash", `fill('1', 'C:\dir\q')`, []any{"1", `C:\dir\q`, false}},
		{"backslash-newline continues the line", "fill('1', 'a\\\nb')", []any{"1", "ab", false}},
		{"utf-8 text", `fill('1', 'naïve 東京')`, []any{"1", "naïve 東京", false}},
		{"hash inside a string is not a comment", `fill('1', '#tag')`, []any{"1", "#tag", false}},
		{"exponent and leading dot", `scroll(1e2, -.5)`, []any{100.0, -0.5}},
		{"plus sign", `scroll(+3, 2.)`, []any{3.0, 2.0}},
		{"whole float index", `tab_focus(1.0)`, []any{1.0}},
		{"empty modifiers list", `click('1', 'left', [])`, []any{"1", "left", []string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, err := ParseActions(tt.src)
			if err != nil {
				t.Fatalf("ParseActions(%q): %v", tt.src, err)
			}
			if len(calls) != 1 || !reflect.DeepEqual(calls[0].Args, tt.args) {
				t.Fatalf("ParseActions(%q) = %#v, want one call with args %#v", tt.src, calls, tt.args)
			}
		})
	}
}

func TestParseActionsSeveralCalls(t *testing.T) {
	src := "# log in first\nfill('5', 'bob') ; fill(\"6\", 'pw')\n\n  click('7')  # submit\nnoop(0);;\tgo_back() goto('https://a.test/?q=1;2')"
	calls, err := ParseActions(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		src  string
	}{
		{"fill", "fill('5', 'bob')"},
		{"fill", "fill(\"6\", 'pw')"},
		{"click", "click('7')"},
		{"noop", "noop(0)"},
		{"go_back", "go_back()"},
		{"goto", "goto('https://a.test/?q=1;2')"},
	}
	if len(calls) != len(want) {
		t.Fatalf("got %d calls %+v, want %d", len(calls), calls, len(want))
	}
	for i, w := range want {
		c := calls[i]
		if c.Name != w.name || c.Src != w.src || c.Index != i || src[c.Offset:c.Offset+len(c.Src)] != w.src {
			t.Errorf("call %d = {%s %q index %d offset %d}, want {%s %q index %d at its offset}", i, c.Name, c.Src, c.Index, c.Offset, w.name, w.src, i)
		}
	}
	if got := calls[5].Str("url"); got != "https://a.test/?q=1;2" {
		t.Errorf("goto url = %q", got)
	}
}

func TestCallAccessors(t *testing.T) {
	calls, err := ParseActions(`click('9', modifiers=['Shift']); scroll(1, 2.5); fill('1', 'v', True)`)
	if err != nil {
		t.Fatal(err)
	}
	click, scroll, fill := calls[0], calls[1], calls[2]
	if click.Str("bid") != "9" || click.Str("button") != "left" || !reflect.DeepEqual(click.Strs("modifiers"), []string{"Shift"}) {
		t.Errorf("click accessors: bid %q button %q modifiers %v", click.Str("bid"), click.Str("button"), click.Strs("modifiers"))
	}
	if scroll.Float("delta_y") != 2.5 || !fill.Bool("enable_autocomplete_menu") {
		t.Errorf("scroll delta_y %v, fill autocomplete %v", scroll.Float("delta_y"), fill.Bool("enable_autocomplete_menu"))
	}
	if click.Arg("nope") != nil || click.Str("nope") != "" || (Call{Name: "zzz"}).Arg("bid") != nil {
		t.Error("unknown parameters or actions must give zero values")
	}
}

func TestParseActionsDefaultsAreNotShared(t *testing.T) {
	a, _ := ParseActions(`click('1')`)
	b, _ := ParseActions(`click('2')`)
	ma := a[0].Args[2].([]string)
	_ = append(ma[:0:0], "Shift")
	if got := b[0].Strs("modifiers"); len(got) != 0 {
		t.Fatalf("modifiers default leaked between calls: %v", got)
	}
}

func TestParseActionsErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		index  int
		offset int
		action string
		msg    string // substring of Msg
	}{
		{"empty input", "", 0, 0, "", "no action given"},
		{"only comments and blanks", "  # nothing\n ;\n", 0, 15, "", "no action given"},
		{"unknown action suggests the closest", "click('3'); clikc('4')", 1, 12, "clikc('4')", `unknown action "clikc" (did you mean "click"?); known: send_msg_to_user, report_infeasible, noop,`},
		{"check is not in the default action set", "check('1')", 0, 0, "check('1')", `unknown action "check"`},
		{"missing parenthesis", "click '3'", 0, 6, "click '3'", `expected '(' after "click", found '\''`},
		{"prose is not an action", "I will click('3')", 0, 2, "I will click('3')", `expected '(' after "I", found 'w'`},
		{"not an identifier", "42", 0, 0, "42", "expected an action name, found '4'"},
		{"unterminated call", "click('3'", 0, 9, "click('3'", "expected ',' or ')' in the argument list, found end of input"},
		{"unterminated string", "fill('1', 'abc)", 0, 10, "fill('1', 'abc)", "unterminated string"},
		{"raw newline in a single-quoted string", "fill('1', 'a\nb')", 0, 10, "fill('1', 'a", "unterminated string at end of line"},
		{"unterminated triple quote", "fill('1', '''abc", 0, 10, "fill('1', '''abc", "close it with '''"},
		{"bad hex escape", `fill('1', '\xZZ')`, 0, 11, `fill('1', '\xZZ')`, `bad \x escape`},
		{"truncated unicode escape", `fill('1', '\u12`, 0, 11, `fill('1', '\u12`, `truncated \u escape`},
		{"named unicode escape", `fill('1', '\N{BULLET}')`, 0, 11, `fill('1', '\N{BULLET}')`, `\N{...} escapes are not supported`},
		{"unquoted bid", "click(12)", 0, 6, "click(12)", `argument "bid" must be a string such as '12' (quote it), got 12`},
		{"bare name value", "click(a12)", 0, 6, "click(a12)", `unexpected name "a12" where a value belongs; quote strings, e.g. 'a12'`},
		{"missing required argument", "fill('1')", 0, 8, "fill('1')", `missing required argument "value"; signature: fill(bid: str, value: str, enable_autocomplete_menu: bool = False)`},
		{"too many arguments", "hover('1', '2')", 0, 11, "hover('1', '2')", "hover takes 1 argument but 2 were given"},
		{"arguments to a no-argument action", "go_back(1)", 0, 8, "go_back(1)", "go_back takes no arguments but 1 were given"},
		{"unknown keyword", "click('1', btn='right')", 0, 11, "click('1', btn='right')", `unexpected keyword argument "btn"; signature: click(bid: str, button: Literal["left", "middle", "right"] = "left"`},
		{"keyword repeats a positional", "click('1', bid='2')", 0, 11, "click('1', bid='2')", `argument "bid" given twice`},
		{"keyword given twice", "click(bid='1', bid='2')", 0, 15, "click(bid='1', bid='2')", `argument "bid" given twice`},
		{"positional after keyword", "click(bid='1', 'left')", 0, 15, "click(bid='1', 'left')", "positional argument follows keyword argument"},
		{"bad button", "click('1', button='up')", 0, 18, "click('1', button='up')", `argument "button" must be one of "left", "middle", "right", got 'up'`},
		{"bad modifier", "click('1', modifiers=['Ctrl'])", 0, 21, "click('1', modifiers=['Ctrl'])", `argument "modifiers" must be a list of "Alt"`},
		{"modifiers as a string", "click('1', modifiers='Shift')", 0, 21, "click('1', modifiers='Shift')", `argument "modifiers" must be a list`},
		{"options with a number", "select_option('1', ['a', 2])", 0, 19, "select_option('1', ['a', 2])", `argument "options" must be a string or a list of strings`},
		{"None is not a string", "goto(None)", 0, 5, "goto(None)", `argument "url" must be a string such as '12' (quote it), got None`},
		{"dict is not a string", `goto({"a": 1})`, 0, 5, `goto({"a": 1})`, `must be a string such as '12' (quote it), got {"a": 1}`},
		{"string where a number belongs", "scroll('0', 100)", 0, 7, "scroll('0', 100)", `argument "delta_x" must be a number, got '0'`},
		{"bool where a number belongs", "scroll(True, 1)", 0, 7, "scroll(True, 1)", `argument "delta_x" must be a number, got True`},
		{"fractional tab index", "tab_focus(1.5)", 0, 10, "tab_focus(1.5)", `argument "index" must be a whole number, got 1.5`},
		{"string where a bool belongs", "fill('1', 'x', 'yes')", 0, 15, "fill('1', 'x', 'yes')", `argument "enable_autocomplete_menu" must be True or False`},
		{"number out of range", "scroll(1e999, 0)", 0, 7, "scroll(1e999, 0)", `number "1e999" is out of range`},
		{"malformed number", "scroll(-, 0)", 0, 7, "scroll(-, 0)", `malformed number "-"`},
		{"missing comma", "scroll(1 2)", 0, 9, "scroll(1 2)", "expected ',' or ')' in the argument list, found '2'"},
		{"unclosed list", "select_option('1', ['a'", 0, 23, "select_option('1', ['a'", `expected ',' or ']', found end of input`},
		{"dict key not a string", "goto({1: 2})", 0, 6, "goto({1: 2})", "dict keys must be quoted strings"},
		{"dict without colon", "goto({'a' 2})", 0, 10, "goto({'a' 2})", "expected ':' after a dict key"},
		{"deep nesting", "goto(" + strings.Repeat("[", 40), 0, 37, "goto(" + strings.Repeat("[", 40), "lists nested more than 32 deep"},
		{"second line is reported with its index", "click('1')\nnoop()\nfill('2')", 2, 26, "fill('2')", `missing required argument "value"`},
		{"double equals is not a keyword", "click(bid=='1')", 0, 6, "click(bid=='1')", `unexpected name "bid" where a value belongs`},
		{"closing paren alone", ")", 0, 0, ")", "expected an action name, found ')'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, err := ParseActions(tt.src)
			var ae *ActionError
			if !errors.As(err, &ae) {
				t.Fatalf("ParseActions(%q) = %+v, %v; want an *ActionError", tt.src, calls, err)
			}
			if calls != nil {
				t.Errorf("calls = %+v, want nil on error", calls)
			}
			if ae.Index != tt.index || ae.Offset != tt.offset || ae.Action != tt.action || !strings.Contains(ae.Msg, tt.msg) {
				t.Errorf("ParseActions(%q) error\n got {index %d offset %d action %q msg %q}\nwant {index %d offset %d action %q msg containing %q}",
					tt.src, ae.Index, ae.Offset, ae.Action, ae.Msg, tt.index, tt.offset, tt.action, tt.msg)
			}
		})
	}
}

func TestActionErrorText(t *testing.T) {
	_, err := ParseActions("click('3'); clikc('4')")
	want := `browser action 2 ("clikc('4')") at offset 12: unknown action "clikc" (did you mean "click"?); known: ` + strings.Join(ActionNames(), ", ")
	if err == nil || err.Error() != want {
		t.Fatalf("error text\n got %v\nwant %s", err, want)
	}
	_, err = ParseActions(" ")
	if want := "browser action 1 at offset 1: no action given; send at least one call such as click('12'), goto('https://example.com') or noop()"; err == nil || err.Error() != want {
		t.Fatalf("empty input error\n got %v\nwant %s", err, want)
	}
}

func TestActionErrorSnippetIsCut(t *testing.T) {
	src := "fill('1', '" + strings.Repeat("é", 300)
	_, err := ParseActions(src)
	var ae *ActionError
	if !errors.As(err, &ae) {
		t.Fatalf("want *ActionError, got %v", err)
	}
	if len(ae.Action) > 210 || !strings.HasSuffix(ae.Action, "...") || !strings.HasPrefix(ae.Action, "fill('1', 'éé") {
		t.Fatalf("snippet not cut on a rune boundary with an ellipsis: %q (%d bytes)", ae.Action, len(ae.Action))
	}
}

func FuzzParseActions(f *testing.F) {
	// The committed corpus in testdata/fuzz/FuzzParseActions adds the
	// awkward cases; these seeds are the everyday shapes.
	for _, s := range []string{
		`click('12')`, `fill("5", 'multi\nline')`, `select_option('7', ["a","b"])`,
		`scroll(0, 200.5)`, `noop()`, `click('3', button="right")`, "a()\nb();c() # x",
		`fill('1', """x""")`, `goto({'k': [1, (2,), None]})`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		calls, err := ParseActions(src)
		if err != nil {
			var ae *ActionError
			if !errors.As(err, &ae) {
				t.Fatalf("error is %T, want *ActionError: %v", err, err)
			}
			if ae.Offset < 0 || ae.Offset > len(src) || ae.Msg == "" {
				t.Fatalf("bad error position or message: %+v", ae)
			}
			return
		}
		if len(calls) == 0 {
			t.Fatal("no calls and no error")
		}
		for i, c := range calls {
			sig, ok := lookup(c.Name)
			if !ok || len(c.Args) != len(sig.params) || c.Index != i {
				t.Fatalf("call %d %+v does not match its signature", i, c)
			}
			if c.Offset < 0 || c.Offset+len(c.Src) > len(src) || src[c.Offset:c.Offset+len(c.Src)] != c.Src {
				t.Fatalf("call %d Src %q is not the input at offset %d", i, c.Src, c.Offset)
			}
			for _, a := range c.Args {
				switch a.(type) {
				case string, float64, bool, []string:
				default:
					t.Fatalf("call %d has an argument of type %T", i, a)
				}
			}
		}
	})
}
