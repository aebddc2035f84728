package eventbus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// A payloadPlan tells the decoder how to fill one payload struct (an
// action's args, an observation's extras, or a struct inside them) from a
// JSON object in one pass, without encoding/json's per-call reflection:
// the fields are looked up by their JSON name once, when the package is
// initialised. Decoding follows encoding/json's rules for these field
// types (exact name first, then a case-insensitive match; null leaves a
// value as it is and sets pointers and slices to nil; unknown keys are
// ignored), with OpenHands' leniencies: an int may be written as an
// integral float (120.0), and a security_risk that is not -1..2 is unknown.
type payloadPlan struct {
	fields []payloadField
	byName map[string]int // JSON name -> index in fields
}

type payloadField struct {
	name  string // JSON name
	index int    // Go struct field index
	kind  fieldKind
	typ   reflect.Type
	sub   *payloadPlan // kind == fieldStruct
}

type fieldKind uint8

const (
	fieldString      fieldKind = iota // string, ConfirmationState
	fieldStringPtr                    // *string
	fieldBool                         // bool
	fieldInt                          // int
	fieldIntPtr                       // *int, *int64
	fieldRisk                         // SecurityRisk
	fieldRaw                          // json.RawMessage, kept verbatim
	fieldStringSlice                  // []string
	fieldIntSlice                     // []int, []int64
	fieldStruct                       // a nested struct (CmdOutputMetadata)
)

// payloadPlans holds the plan of every action and observation payload
// type. It is built once at package initialisation and never changed.
var payloadPlans = buildPayloadPlans()

func buildPayloadPlans() map[reflect.Type]*payloadPlan {
	plans := map[reflect.Type]*payloadPlan{}
	add := func(v any) {
		t := reflect.TypeOf(v).Elem()
		plans[t] = mustPlan(t)
	}
	for _, name := range strings.Split(knownActions(), ", ") {
		add(newAction(name))
	}
	for _, name := range strings.Split(knownObservations(), ", ") {
		add(newObservation(name))
	}
	return plans
}

// mustPlan builds the plan of struct type t. A field type the decoder does
// not know is a programming error in this package, caught by every test.
func mustPlan(t reflect.Type) *payloadPlan {
	p := &payloadPlan{byName: map[string]int{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f := payloadField{name: name, index: i, typ: sf.Type, kind: kindOf(sf.Type)}
		if f.kind == fieldStruct {
			f.sub = mustPlan(sf.Type)
		}
		p.byName[name] = len(p.fields)
		p.fields = append(p.fields, f)
	}
	if len(p.fields) > 64 {
		panic(fmt.Sprintf("eventbus: payload %s has more than 64 fields; the decoder's seen-set is a uint64", t))
	}
	return p
}

func kindOf(t reflect.Type) fieldKind {
	switch {
	case t == reflect.TypeFor[json.RawMessage]():
		return fieldRaw
	case t == reflect.TypeFor[SecurityRisk]():
		return fieldRisk
	}
	switch t.Kind() {
	case reflect.String:
		return fieldString
	case reflect.Bool:
		return fieldBool
	case reflect.Int, reflect.Int64:
		return fieldInt
	case reflect.Struct:
		return fieldStruct
	case reflect.Pointer:
		switch t.Elem().Kind() {
		case reflect.String:
			return fieldStringPtr
		case reflect.Int, reflect.Int64:
			return fieldIntPtr
		}
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.String:
			return fieldStringSlice
		case reflect.Int, reflect.Int64:
			return fieldIntSlice
		}
	}
	panic(fmt.Sprintf("eventbus: the codec cannot decode a payload field of type %s", t))
}

// fieldError is a decode error inside a payload; field is the JSON path
// below the payload ("metadata.exit_code").
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return fmt.Sprintf("field %q: %v", e.field, e.err) }
func (e *fieldError) Unwrap() error { return e.err }

// inField prefixes err's path with name.
func inField(name string, err error) error {
	if fe, ok := err.(*fieldError); ok {
		return &fieldError{field: name + "." + fe.field, err: fe.err}
	}
	if _, ok := err.(*SyntaxError); ok {
		return err
	}
	return &fieldError{field: name, err: err}
}

// lookup returns the index of the field key names: its exact JSON name,
// else the first case-insensitive match (encoding/json's rule), else -1.
func (p *payloadPlan) lookup(key []byte) int {
	for i := range p.fields { // payloads have few fields: a scan beats hashing
		if p.fields[i].name == string(key) {
			return i
		}
	}
	for i := range p.fields {
		if bytes.EqualFold(key, []byte(p.fields[i].name)) {
			return i
		}
	}
	return -1
}

// decode fills struct v from the object at the cursor. other, if not nil,
// is called with each key that names no field and the span of its value
// (legacy keys). seen has bit i set for every field i the object set.
func (p *payloadPlan) decode(s *scanner, v reflect.Value, depth int, other func(key, val []byte)) (seen uint64, err error) {
	err = s.object(depth, func(key []byte) error {
		i := p.lookup(key)
		if i < 0 {
			val, err := s.skip(depth + 1)
			if err == nil && other != nil {
				other(key, val)
			}
			return err
		}
		seen |= 1 << i
		f := &p.fields[i]
		if err := f.decode(s, v.Field(f.index), depth+1); err != nil {
			return inField(f.name, err)
		}
		return nil
	})
	return seen, err
}

// decodeSpan decodes the JSON value val into field i of v (legacy keys
// moved onto their modern names).
func (p *payloadPlan) decodeSpan(i int, v reflect.Value, val []byte) error {
	f := &p.fields[i]
	s := scanner{data: val}
	if err := f.decode(&s, v.Field(f.index), 1); err != nil {
		return inField(f.name, err)
	}
	return s.end()
}

// decode reads one value into fv, which has the field's type.
func (f *payloadField) decode(s *scanner, fv reflect.Value, depth int) error {
	if f.kind == fieldRaw {
		val, err := s.skip(depth)
		if err != nil {
			return err
		}
		if !s.owned {
			val = bytes.Clone(val)
		}
		fv.SetBytes(val[:len(val):len(val)])
		return nil
	}
	if null, err := s.null(); null || err != nil {
		if err == nil && f.kind != fieldString && f.kind != fieldBool && f.kind != fieldInt && f.kind != fieldRisk && f.kind != fieldStruct {
			fv.SetZero() // pointers and slices become nil, as with encoding/json
		}
		return err
	}
	switch f.kind {
	case fieldString:
		str, err := s.stringValue()
		if err != nil {
			return err
		}
		fv.SetString(str)
	case fieldStringPtr:
		str, err := s.stringValue()
		if err != nil {
			return err
		}
		*fv.Addr().Interface().(**string) = &str
	case fieldBool:
		b, err := s.boolean()
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case fieldInt:
		n, err := s.integer()
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case fieldIntPtr:
		n, err := s.integer()
		if err != nil {
			return err
		}
		p := reflect.New(f.typ.Elem())
		p.Elem().SetInt(n)
		fv.Set(p)
	case fieldRisk:
		return decodeRisk(s, fv, depth)
	case fieldStringSlice, fieldIntSlice:
		return f.decodeSlice(s, fv, depth)
	case fieldStruct:
		if s.peek() != '{' {
			return fmt.Errorf("expected an object, got %s", s.kindAt())
		}
		_, err := f.sub.decode(s, fv, depth, nil)
		return err
	}
	return nil
}

// decodeRisk reads a security_risk: OpenHands drops a risk that is not an
// integer in -1..2 (ActionSecurityRisk), leaving the default, unknown.
func decodeRisk(s *scanner, fv reflect.Value, depth int) error {
	val, err := s.skip(depth)
	if err != nil {
		return err
	}
	r := int64(RiskUnknown)
	if c := val[0]; c == '-' || c >= '0' && c <= '9' {
		if n, err := parseInteger(val); err == nil && n >= -1 && n <= 2 {
			r = n
		}
	}
	fv.SetInt(r)
	return nil
}

// decodeSlice reads an array of strings or integers; null elements are the
// zero value, as with encoding/json.
func (f *payloadField) decodeSlice(s *scanner, fv reflect.Value, depth int) error {
	if s.peek() != '[' {
		return fmt.Errorf("expected an array, got %s", s.kindAt())
	}
	out := reflect.MakeSlice(f.typ, 0, 4)
	err := s.array(depth, func() error {
		i := out.Len()
		out = reflect.Append(out, reflect.Zero(f.typ.Elem()))
		null, err := s.null()
		if null || err != nil {
			return err
		}
		if f.kind == fieldStringSlice {
			str, err := s.stringValue()
			if err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
			out.Index(i).SetString(str)
			return nil
		}
		n, err := s.integer()
		if err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		out.Index(i).SetInt(n)
		return nil
	})
	if err != nil {
		return err
	}
	fv.Set(out)
	return nil
}

// payloadEqual reports whether two payloads of the same type hold the same
// values, as reflect.DeepEqual does for them (nil and empty slices
// differ), through their plan: Marshal asks it of every decoded event to
// know whether the program changed its payload.
func payloadEqual(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Type() != vb.Type() {
		return false
	}
	plan := payloadPlans[va.Type().Elem()]
	if plan == nil {
		return reflect.DeepEqual(a, b)
	}
	return plan.equal(va.Elem(), vb.Elem())
}

func (p *payloadPlan) equal(a, b reflect.Value) bool {
	for i := range p.fields {
		f := &p.fields[i]
		if !f.equal(a.Field(f.index), b.Field(f.index)) {
			return false
		}
	}
	return true
}

func (f *payloadField) equal(a, b reflect.Value) bool {
	switch f.kind {
	case fieldString:
		return a.String() == b.String()
	case fieldBool:
		return a.Bool() == b.Bool()
	case fieldInt, fieldRisk:
		return a.Int() == b.Int()
	case fieldStringPtr, fieldIntPtr:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		if f.kind == fieldStringPtr {
			return a.Elem().String() == b.Elem().String()
		}
		return a.Elem().Int() == b.Elem().Int()
	case fieldRaw:
		return a.IsNil() == b.IsNil() && bytes.Equal(a.Bytes(), b.Bytes())
	case fieldStringSlice, fieldIntSlice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			ea, eb := a.Index(i), b.Index(i)
			if f.kind == fieldStringSlice && ea.String() != eb.String() || f.kind == fieldIntSlice && ea.Int() != eb.Int() {
				return false
			}
		}
		return true
	case fieldStruct:
		return f.sub.equal(a, b)
	}
	return false
}
