//go:build !corralcount

package eventbus

// CodecCountEnabled reports whether this binary counts codec calls (build
// with -tags corralcount to count them; see codeccount.go).
const CodecCountEnabled = false

func countEncode() {}
func countDecode() {}

// CodecCounts is always 0, 0 without -tags corralcount.
func CodecCounts() (encodes, decodes int64) { return 0, 0 }
