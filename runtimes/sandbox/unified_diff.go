package sandbox

import "strings"

// UnifiedDiff is Python's difflib.unified_diff of the lines of a and b with
// n lines of context, as one string ("" when they are equal). It is the
// diff FileEditObservation.diff is made with, offered to other packages
// (corral replay --diff) so that they show differences the same way.
func UnifiedDiff(a, b, fromfile, tofile string, n int) string {
	lines := unifiedDiff(strings.Split(a, "\n"), strings.Split(b, "\n"), fromfile, tofile, n)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}
