package sandbox

import (
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// This file ports the parts of Python's difflib that OpenHands uses to build
// FileEditObservation.diff (openhands_aci.utils.diff.get_diff). A generic
// Myers diff would produce different (equally valid) hunks; agents and
// replays compare these strings, so the algorithm is the same as CPython's
// SequenceMatcher, including its "autojunk" heuristic for long inputs.

type diffMatch struct{ a, b, size int }

type diffOpcode struct {
	tag            byte // 'e'qual, 'r'eplace, 'd'elete, 'i'nsert
	i1, i2, j1, j2 int
}

type sequenceMatcher struct {
	a, b []string
	b2j  map[string][]int
}

func newSequenceMatcher(a, b []string) *sequenceMatcher {
	m := &sequenceMatcher{a: a, b: b, b2j: make(map[string][]int)}
	for i, s := range b {
		m.b2j[s] = append(m.b2j[s], i)
	}
	// autojunk: in sequences of 200+ items, items occurring in more than 1%
	// of b are "popular" and are not used to seed matches.
	if n := len(b); n >= 200 {
		ntest := n/100 + 1
		for s, idx := range m.b2j {
			if len(idx) > ntest {
				delete(m.b2j, s)
			}
		}
	}
	return m
}

func (m *sequenceMatcher) findLongestMatch(alo, ahi, blo, bhi int) diffMatch {
	besti, bestj, bestsize := alo, blo, 0
	j2len := map[int]int{}
	for i := alo; i < ahi; i++ {
		newj2len := map[int]int{}
		for _, j := range m.b2j[m.a[i]] {
			if j < blo {
				continue
			}
			if j >= bhi {
				break
			}
			k := j2len[j-1] + 1
			newj2len[j] = k
			if k > bestsize {
				besti, bestj, bestsize = i-k+1, j-k+1, k
			}
		}
		j2len = newj2len
	}
	// No junk predicate is used, so only equal neighbours (popular items
	// included) extend the match.
	for besti > alo && bestj > blo && m.a[besti-1] == m.b[bestj-1] {
		besti, bestj, bestsize = besti-1, bestj-1, bestsize+1
	}
	for besti+bestsize < ahi && bestj+bestsize < bhi && m.a[besti+bestsize] == m.b[bestj+bestsize] {
		bestsize++
	}
	return diffMatch{besti, bestj, bestsize}
}

func (m *sequenceMatcher) matchingBlocks() []diffMatch {
	la, lb := len(m.a), len(m.b)
	type span struct{ alo, ahi, blo, bhi int }
	queue := []span{{0, la, 0, lb}}
	var blocks []diffMatch
	for len(queue) > 0 {
		s := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		x := m.findLongestMatch(s.alo, s.ahi, s.blo, s.bhi)
		if x.size > 0 {
			blocks = append(blocks, x)
			if s.alo < x.a && s.blo < x.b {
				queue = append(queue, span{s.alo, x.a, s.blo, x.b})
			}
			if x.a+x.size < s.ahi && x.b+x.size < s.bhi {
				queue = append(queue, span{x.a + x.size, s.ahi, x.b + x.size, s.bhi})
			}
		}
	}
	sort.Slice(blocks, func(i, j int) bool {
		if blocks[i].a != blocks[j].a {
			return blocks[i].a < blocks[j].a
		}
		if blocks[i].b != blocks[j].b {
			return blocks[i].b < blocks[j].b
		}
		return blocks[i].size < blocks[j].size
	})
	var out []diffMatch
	i1, j1, k1 := 0, 0, 0
	for _, x := range blocks {
		if i1+k1 == x.a && j1+k1 == x.b {
			k1 += x.size
			continue
		}
		if k1 > 0 {
			out = append(out, diffMatch{i1, j1, k1})
		}
		i1, j1, k1 = x.a, x.b, x.size
	}
	if k1 > 0 {
		out = append(out, diffMatch{i1, j1, k1})
	}
	return append(out, diffMatch{la, lb, 0})
}

func (m *sequenceMatcher) opcodes() []diffOpcode {
	i, j := 0, 0
	var out []diffOpcode
	for _, x := range m.matchingBlocks() {
		var tag byte
		switch {
		case i < x.a && j < x.b:
			tag = 'r'
		case i < x.a:
			tag = 'd'
		case j < x.b:
			tag = 'i'
		}
		if tag != 0 {
			out = append(out, diffOpcode{tag, i, x.a, j, x.b})
		}
		i, j = x.a+x.size, x.b+x.size
		if x.size > 0 {
			out = append(out, diffOpcode{'e', x.a, i, x.b, j})
		}
	}
	return out
}

func (m *sequenceMatcher) groupedOpcodes(n int) [][]diffOpcode {
	codes := m.opcodes()
	if len(codes) == 0 {
		codes = []diffOpcode{{'e', 0, 1, 0, 1}}
	}
	if c := &codes[0]; c.tag == 'e' {
		c.i1, c.j1 = max(c.i1, c.i2-n), max(c.j1, c.j2-n)
	}
	if c := &codes[len(codes)-1]; c.tag == 'e' {
		c.i2, c.j2 = min(c.i2, c.i1+n), min(c.j2, c.j1+n)
	}
	var groups [][]diffOpcode
	var group []diffOpcode
	for _, c := range codes {
		if c.tag == 'e' && c.i2-c.i1 > 2*n {
			group = append(group, diffOpcode{'e', c.i1, min(c.i2, c.i1+n), c.j1, min(c.j2, c.j1+n)})
			groups = append(groups, group)
			group = nil
			c.i1, c.j1 = max(c.i1, c.i2-n), max(c.j1, c.j2-n)
		}
		group = append(group, c)
	}
	if len(group) > 0 && !(len(group) == 1 && group[0].tag == 'e') {
		groups = append(groups, group)
	}
	return groups
}

func formatRangeUnified(start, stop int) string {
	beginning, length := start+1, stop-start
	if length == 1 {
		return strconv.Itoa(beginning)
	}
	if length == 0 {
		beginning--
	}
	return strconv.Itoa(beginning) + "," + strconv.Itoa(length)
}

// unifiedDiff returns the lines of Python's difflib.unified_diff(a, b,
// fromfile, tofile, n=n, lineterm=”).
func unifiedDiff(a, b []string, fromfile, tofile string, n int) []string {
	var out []string
	for gi, group := range newSequenceMatcher(a, b).groupedOpcodes(n) {
		if gi == 0 {
			out = append(out, "--- "+fromfile, "+++ "+tofile)
		}
		first, last := group[0], group[len(group)-1]
		out = append(out, "@@ -"+formatRangeUnified(first.i1, last.i2)+" +"+formatRangeUnified(first.j1, last.j2)+" @@")
		for _, c := range group {
			if c.tag == 'e' {
				for _, l := range a[c.i1:c.i2] {
					out = append(out, " "+l)
				}
				continue
			}
			if c.tag == 'r' || c.tag == 'd' {
				for _, l := range a[c.i1:c.i2] {
					out = append(out, "-"+l)
				}
			}
			if c.tag == 'r' || c.tag == 'i' {
				for _, l := range b[c.j1:c.j2] {
					out = append(out, "+"+l)
				}
			}
		}
	}
	return out
}

// editDiff is openhands_aci.utils.diff.get_diff: a unified diff without
// context lines, every line right-stripped, joined by newlines.
func editDiff(oldText, newText, path string) string {
	lines := unifiedDiff(strings.Split(oldText, "\n"), strings.Split(newText, "\n"), path, path, 0)
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	return strings.Join(lines, "\n")
}
