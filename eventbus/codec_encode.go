package eventbus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
)

// encodePayload writes payload (an Action or Observation) as a JSON object
// through its plan: the bytes encoding/json writes for it with HTML
// escaping off (fields in declaration order, json.RawMessage compacted, nil
// pointers and slices as null), without its per-call reflection and the
// copy out of an encoder. FuzzPayloadEncodesLikeEncodingJSON holds the two
// to the same output.
func encodePayload(buf *bytes.Buffer, payload any) error {
	v := reflect.ValueOf(payload)
	plan := payloadPlans[v.Type().Elem()]
	if plan == nil { // not a payload type of this package: cannot happen
		b, err := marshalNoEscape(payload)
		buf.Write(b)
		return err
	}
	return plan.encode(buf, v.Elem())
}

func (p *payloadPlan) encode(buf *bytes.Buffer, v reflect.Value) error {
	buf.WriteByte('{')
	for i := range p.fields {
		f := &p.fields[i]
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('"')
		buf.WriteString(f.name) // Go identifiers' JSON names: nothing to escape
		buf.WriteString(`":`)
		if err := f.encode(buf, v.Field(f.index)); err != nil {
			return fmt.Errorf("field %q: %w", f.name, err)
		}
	}
	buf.WriteByte('}')
	return nil
}

func (f *payloadField) encode(buf *bytes.Buffer, fv reflect.Value) error {
	var scratch [24]byte
	switch f.kind {
	case fieldString:
		writeString(buf, fv.String())
	case fieldBool:
		buf.WriteString(strconv.FormatBool(fv.Bool()))
	case fieldInt, fieldRisk:
		buf.Write(strconv.AppendInt(scratch[:0], fv.Int(), 10))
	case fieldStringPtr, fieldIntPtr:
		if fv.IsNil() {
			buf.WriteString("null")
		} else if f.kind == fieldStringPtr {
			writeString(buf, fv.Elem().String())
		} else {
			buf.Write(strconv.AppendInt(scratch[:0], fv.Elem().Int(), 10))
		}
	case fieldRaw:
		if fv.IsNil() {
			buf.WriteString("null")
			return nil
		}
		return json.Compact(buf, fv.Bytes())
	case fieldStringSlice, fieldIntSlice:
		if fv.IsNil() {
			buf.WriteString("null")
			return nil
		}
		buf.WriteByte('[')
		for i := range fv.Len() {
			if i > 0 {
				buf.WriteByte(',')
			}
			if f.kind == fieldStringSlice {
				writeString(buf, fv.Index(i).String())
			} else {
				buf.Write(strconv.AppendInt(scratch[:0], fv.Index(i).Int(), 10))
			}
		}
		buf.WriteByte(']')
	case fieldStruct:
		return f.sub.encode(buf, fv)
	}
	return nil
}
