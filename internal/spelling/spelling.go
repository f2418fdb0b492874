// Package spelling finds what a misspelt name was meant to be: the "did you mean" of
// recipe fields, layer ids and package names. It imports nothing of Debate's, so that
// every package, recipe parsing included, can use it.
package spelling

import (
	"iter"
	"strings"
)

// Nearest returns the candidate closest to name by edit distance (case ignored), or ""
// when none is close enough to be a typo: fewer than 3 edits, 4 for names longer than 8
// characters. Ties go to the alphabetically first candidate, so the answer is stable
// whatever the order of candidates.
func Nearest(name string, candidates iter.Seq[string]) string {
	limit := 3
	if len(name) > 8 {
		limit = 4
	}
	lname := strings.ToLower(name)
	best, bestD := "", limit
	for c := range candidates {
		// A length difference is a lower bound of the distance: most candidates stop here.
		if d := len(c) - len(name); d > bestD || -d > bestD {
			continue
		}
		d := Distance(lname, strings.ToLower(c), bestD+1)
		if d < bestD || (d == bestD && best != "" && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

// Distance is the Levenshtein distance of a and b, or limit when it is at least that
// (the bound keeps a search over thousands of names fast, and stops early on long input).
func Distance(a, b string, limit int) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
