package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"debate/internal/builder"
	"debate/internal/recipe"
)

// A pin scope is the part of a recipe that decides what its resolve stage pins: the base
// distribution, release, architecture, components, whether updates are included, the
// snapshot and the mirrors. Every recipe of one scope pins the same archive, so the
// inputs a worker pinned for one recipe give the build key of any other recipe of the
// scope: the API computes it and answers a cache hit without waiting for a worker.
//
// The mirrors are part of the scope although the recipe hash leaves them out: an empty
// mirror means "the worker's default", and two mirrors may be at different points in
// time. Components and architecture do not change the signed Release files, but keeping
// them in the scope costs only a few extra refreshes and keeps the rule obvious.
type scopeBase struct {
	Distribution   string   `json:"distribution"`
	Release        string   `json:"release"`
	Architecture   string   `json:"architecture"`
	Components     []string `json:"components"`
	Updates        bool     `json:"updates"`
	Snapshot       string   `json:"snapshot,omitempty"`
	Mirror         string   `json:"mirror,omitempty"`
	SecurityMirror string   `json:"securityMirror,omitempty"`
}

// pinScope returns the hash of a recipe's pin scope and the scope as JSON.
func pinScope(r *recipe.Recipe) (hash string, base json.RawMessage) {
	// Normal form first: default components, sorted, updates on unless turned off.
	n := &recipe.Recipe{Base: r.Base}
	n.Base.Components = append([]string(nil), r.Base.Components...)
	n.Normalize()
	b := n.Base
	sb := scopeBase{
		Distribution: b.Distribution, Release: b.Release, Architecture: b.Architecture,
		Components: b.Components, Updates: b.Updates == nil || *b.Updates,
		Snapshot: b.Snapshot, Mirror: b.Mirror, SecurityMirror: b.SecurityMirror,
	}
	if sb.Components == nil {
		sb.Components = []string{}
	}
	data, err := json.Marshal(sb)
	if err != nil {
		panic(fmt.Sprintf("jobs: encoding a pin scope: %v", err)) // strings and bools only
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), data
}

// scopeRecipe is the smallest recipe of a scope: what a pin refresh resolves.
func scopeRecipe(base json.RawMessage) (*recipe.Recipe, error) {
	var sb scopeBase
	if err := json.Unmarshal(base, &sb); err != nil {
		return nil, fmt.Errorf("jobs: stored pin scope: %w", err)
	}
	updates := sb.Updates
	r := &recipe.Recipe{
		APIVersion: recipe.APIVersion, Name: "pin-refresh",
		Base: recipe.Base{
			Distribution: sb.Distribution, Release: sb.Release, Architecture: sb.Architecture,
			Components: sb.Components, Updates: &updates, Snapshot: sb.Snapshot,
			Mirror: sb.Mirror, SecurityMirror: sb.SecurityMirror,
		},
	}
	if err := recipe.Validate(r); err != nil {
		return nil, fmt.Errorf("jobs: stored pin scope: %w", err)
	}
	r.Normalize()
	return r, nil
}

// submissionKey identifies what a submission would build before its inputs are pinned:
// the same recipe against the same scope.
func submissionKey(recipeHash, scopeHash string) string {
	sum := sha256.Sum256([]byte("debate-submission\x00" + recipeHash + "\x00" + scopeHash))
	return hex.EncodeToString(sum[:])
}

// inputsHash identifies a set of pinned inputs independently of any recipe.
func inputsHash(p builder.Pinned) string { return builder.BuildKey("", p) }
