//go:build corralcount

package eventbus

import "sync/atomic"

// Codec call counters, compiled in only with `-tags corralcount` (used by
// benchmarks to count JSON encodes and decodes per action; see
// BENCHMARKS.md). Without the tag countEncode/countDecode are empty and
// inlined away.

var codecEncodes, codecDecodes atomic.Int64

// CodecCountEnabled reports whether this binary counts codec calls.
const CodecCountEnabled = true

func countEncode() { codecEncodes.Add(1) }
func countDecode() { codecDecodes.Add(1) }

// CodecCounts returns how many times Marshal and Unmarshal ran in this
// process so far.
func CodecCounts() (encodes, decodes int64) { return codecEncodes.Load(), codecDecodes.Load() }
