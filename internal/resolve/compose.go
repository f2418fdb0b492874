// Package resolve turns a recipe and the layers it names into the effective recipe the
// builder builds, and reports what stands in the way (unknown layers, layers that require
// or exclude one another) as structured problems.
package resolve

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"debate/internal/catalog"
	"debate/internal/recipe"
)

// Layer is the catalog's layer type: resolve composes what the catalog holds.
type Layer = catalog.Layer

// Catalog looks layers up by id. *catalog.Catalog is one.
type Catalog interface {
	Layer(id string) (Layer, bool)
}

// exclusiveCatalog is implemented by catalogs that know which capabilities are exclusive
// (two layers providing one with different implementations conflict).
type exclusiveCatalog interface {
	Exclusive(capability string) bool
}

// Sentinel errors of Compose; every error Compose returns for a bad recipe also matches
// recipe.ErrInvalid and unwraps to a *recipe.ValidationError with the field paths.
var (
	ErrUnknownLayer     = errors.New("unknown layer")
	ErrUnmetRequirement = errors.New("layer requirement not met")
	ErrLayerConflict    = errors.New("layers conflict")
)

// FieldError codes added by Compose.
const (
	CodeUnknownLayer     = "unknown_layer"
	CodeUnmetRequirement = "unmet_requirement"
	CodeLayerConflict    = "layer_conflict"
)

// Compose returns the effective recipe: r's layers applied in list order, then r's own
// fields on top, normalised (see recipe.Normalize). r is not modified; the result shares
// no memory with r or the catalog.
//
//   - packages: the union of every layer's and the recipe's;
//   - files: by path, a later layer's file replaces an earlier one's, the recipe's replace
//     any layer's;
//   - hostname, locale, timezone, keyboard: the last layer that sets one wins, the recipe
//     wins over all (the keyboard is one setting: layout and variant go together);
//   - services: each unit ends enabled or disabled as the last source that mentions it
//     says, the recipe last;
//   - kernel command line: layers' tokens in order, then the recipe's; of identical tokens
//     only the last stays, so a later "loglevel=3" still comes after an earlier
//     "loglevel=7" and wins in the kernel as it should;
//   - scripts: run in order, layers' first; a script with the name of an earlier one
//     replaces it and runs at the later position;
//   - users: by name, a later layer's user replaces an earlier one's, the recipe's replace
//     any layer's (a layer's admin account gets its password or keys that way);
//   - everything else (name, base, boot, image, the layers list) is the recipe's.
//
// Every problem (r's own, unknown layers, unmet requirements, conflicts) is reported at
// once; the effective recipe is validated too, since layers add content of their own.
func Compose(r *recipe.Recipe, c Catalog) (*recipe.Recipe, error) {
	if r == nil {
		return nil, fmt.Errorf("resolve: compose: %w: no recipe", recipe.ErrInvalid)
	}
	var errs []recipe.FieldError
	var kinds []error
	if err := recipe.Validate(r); err != nil {
		var ve *recipe.ValidationError
		if !errors.As(err, &ve) {
			return nil, err
		}
		errs = append(errs, ve.Errors...)
	}

	layers := make([]Layer, 0, len(r.Layers))
	positions := make([]int, 0, len(r.Layers)) // index in r.Layers of layers[k]
	for i, id := range r.Layers {
		l, ok := c.Layer(id)
		if !ok {
			errs = append(errs, recipe.FieldError{
				Path: fmt.Sprintf("layers[%d]", i), Code: CodeUnknownLayer,
				Message: fmt.Sprintf("%q is not a layer in the catalog", id),
			})
			kinds = appendOnce(kinds, ErrUnknownLayer)
			continue
		}
		layers = append(layers, l)
		positions = append(positions, i)
	}
	relErrs, relKinds := relations(layers, positions, c)
	errs = append(errs, relErrs...)
	for _, k := range relKinds {
		kinds = appendOnce(kinds, k)
	}
	if len(errs) > 0 {
		return nil, &composeError{verr: &recipe.ValidationError{Errors: errs}, kinds: kinds}
	}

	eff := apply(r, layers)
	if err := recipe.Validate(eff); err != nil {
		return nil, fmt.Errorf("the recipe with its layers applied is invalid: %w", err)
	}
	eff.Normalize()
	return eff, nil
}

// relations checks Requires and Conflicts among the listed layers, and exclusive
// capabilities when the catalog knows them.
func relations(layers []Layer, positions []int, c Catalog) ([]recipe.FieldError, []error) {
	var errs []recipe.FieldError
	var kinds []error
	// who[name] lists the indices of layers that are or provide name.
	who := map[string][]int{}
	for k, l := range layers {
		who[l.ID] = append(who[l.ID], k)
		for _, p := range l.Capabilities() {
			if p != l.ID && !slices.Contains(who[p], k) {
				who[p] = append(who[p], k)
			}
		}
	}
	reported := map[[2]int]bool{}
	conflict := func(k, other int, why string) {
		pair := [2]int{min(k, other), max(k, other)}
		if reported[pair] {
			return
		}
		reported[pair] = true
		errs = append(errs, recipe.FieldError{
			Path: fmt.Sprintf("layers[%d]", positions[pair[0]]), Code: CodeLayerConflict,
			Message: fmt.Sprintf("layer %q conflicts with layer %q (layers[%d])%s; remove one of them", layers[pair[0]].ID, layers[pair[1]].ID, positions[pair[1]], why),
		})
		kinds = appendOnce(kinds, ErrLayerConflict)
	}
	ex, _ := c.(exclusiveCatalog)
	for k, l := range layers {
		path := fmt.Sprintf("layers[%d]", positions[k])
		for _, req := range l.Requires {
			if len(who[req]) > 0 {
				continue
			}
			msg := fmt.Sprintf("layer %q requires %q, which no listed layer is or provides", l.ID, req)
			if _, ok := c.Layer(req); ok {
				msg += fmt.Sprintf("; add layer %q", req)
			}
			errs = append(errs, recipe.FieldError{Path: path, Code: CodeUnmetRequirement, Message: msg})
			kinds = appendOnce(kinds, ErrUnmetRequirement)
		}
		for _, con := range l.Conflicts {
			for _, other := range who[con] {
				if other != k {
					conflict(k, other, "")
				}
			}
		}
		if ex == nil {
			continue
		}
		for _, p := range l.Provides {
			name, impl := catalog.Capability(p)
			if !ex.Exclusive(name) {
				continue
			}
			for _, other := range who[name] {
				if other == k {
					continue
				}
				if oi, _ := layers[other].Implementation(name); oi == "" || impl == "" || oi != impl {
					conflict(k, other, fmt.Sprintf(": both provide %s", name))
				}
			}
		}
	}
	slices.SortStableFunc(errs, func(a, b recipe.FieldError) int { return strings.Compare(a.Path, b.Path) })
	return errs, kinds
}

// apply builds the effective recipe, not yet normalised.
func apply(r *recipe.Recipe, layers []Layer) *recipe.Recipe {
	eff := r.Clone()

	var packages []string
	files := map[string]recipe.File{}
	units := map[string]bool{} // full unit name -> enabled
	var cmdline []string
	var scripts []recipe.Script
	eff.Hostname, eff.Locale, eff.Timezone = "", "", ""
	eff.Keyboard = recipe.Keyboard{}

	addScripts := func(s []recipe.Script) {
		for _, sc := range s {
			scripts = slices.DeleteFunc(scripts, func(old recipe.Script) bool { return old.Name == sc.Name })
			scripts = append(scripts, sc)
		}
	}
	addServices := func(s recipe.Services) {
		for _, u := range s.Enable {
			units[recipe.NormalizeUnit(u)] = true
		}
		for _, u := range s.Disable {
			units[recipe.NormalizeUnit(u)] = false
		}
	}
	users := map[string]recipe.User{}
	addUsers := func(us []recipe.User) {
		for _, u := range us {
			u.Groups = slices.Clone(u.Groups)
			u.SSHKeys = slices.Clone(u.SSHKeys)
			users[u.Name] = u
		}
	}
	addFiles := func(fs []recipe.File) {
		for _, f := range recipe.CloneFiles(fs) {
			files[f.Path] = f
		}
	}

	for _, l := range layers {
		packages = append(packages, l.Packages...)
		addFiles(l.Files)
		addUsers(l.Users)
		addServices(l.Services)
		eff.Hostname = override(eff.Hostname, l.Hostname)
		eff.Locale = override(eff.Locale, l.Locale)
		eff.Timezone = override(eff.Timezone, l.Timezone)
		if l.Keyboard != nil {
			eff.Keyboard = *l.Keyboard
		}
		cmdline = append(cmdline, l.KernelCmdline...)
		addScripts(l.Scripts)
	}

	packages = append(packages, r.Packages...)
	addFiles(r.Files)
	addUsers(r.Users)
	addServices(r.Services)
	eff.Hostname = override(eff.Hostname, r.Hostname)
	eff.Locale = override(eff.Locale, r.Locale)
	eff.Timezone = override(eff.Timezone, r.Timezone)
	if r.Keyboard.Layout != "" || r.Keyboard.Variant != "" {
		eff.Keyboard = r.Keyboard
	}
	cmdline = append(cmdline, r.Kernel.Cmdline...)
	addScripts(slices.Clone(r.Scripts))

	eff.Packages = packages
	eff.Files = make([]recipe.File, 0, len(files))
	for _, f := range files {
		eff.Files = append(eff.Files, f)
	}
	slices.SortFunc(eff.Files, func(a, b recipe.File) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	eff.Users = make([]recipe.User, 0, len(users))
	for _, u := range users {
		eff.Users = append(eff.Users, u)
	}
	slices.SortFunc(eff.Users, func(a, b recipe.User) int { return strings.Compare(a.Name, b.Name) })
	eff.Services = recipe.Services{Enable: []string{}, Disable: []string{}}
	for u, on := range units {
		if on {
			eff.Services.Enable = append(eff.Services.Enable, u)
		} else {
			eff.Services.Disable = append(eff.Services.Disable, u)
		}
	}
	slices.Sort(eff.Services.Enable)
	slices.Sort(eff.Services.Disable)
	eff.Kernel.Cmdline = keepLast(cmdline)
	eff.Scripts = scripts
	return eff
}

func override(cur, next string) string {
	if next != "" {
		return next
	}
	return cur
}

// keepLast removes repeated tokens, keeping each one's last occurrence.
func keepLast(tokens []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(tokens))
	for i := len(tokens) - 1; i >= 0; i-- {
		if !seen[tokens[i]] {
			seen[tokens[i]] = true
			out = append(out, tokens[i])
		}
	}
	slices.Reverse(out)
	return out
}

func appendOnce(list []error, e error) []error {
	if slices.Contains(list, e) {
		return list
	}
	return append(list, e)
}

// composeError is a ValidationError that also matches the sentinels of what went wrong.
type composeError struct {
	verr  *recipe.ValidationError
	kinds []error
}

func (e *composeError) Error() string { return e.verr.Error() }

func (e *composeError) Unwrap() []error {
	return append([]error{e.verr}, e.kinds...)
}
