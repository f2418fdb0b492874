package resolve

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"debate/internal/recipe"
)

// Objection codes: stable, clients may switch on them.
const (
	// Layer level.
	ObjUnknownLayer     = "unknown_layer"     // a layer id not in the catalog
	ObjLayerConflict    = "layer_conflict"    // two layers exclude each other
	ObjUnmetRequirement = "unmet_requirement" // a layer needs another that is not listed
	// Package level.
	ObjUnknownPackage  = "unknown_package"  // no such package for the architecture
	ObjVirtualPackage  = "virtual_package"  // a virtual package several packages provide
	ObjUninstallable   = "uninstallable"    // a package that cannot be installed at all
	ObjPackageConflict = "package_conflict" // packages that cannot be installed together
)

// Levels of an objection.
const (
	LevelLayers   = "layers"
	LevelPackages = "packages"
)

// Resolution kinds.
const (
	// Concede removes a named layer or package.
	Concede = "concede"
	// Rebut swaps a layer (or a misspelt package) for a named alternative.
	Rebut = "rebut"
	// Withdraw undoes the last change the client made.
	Withdraw = "withdraw"
	// Amend adds a layer that a listed layer requires.
	Amend = "amend"
)

// Change operations.
const (
	OpAddLayer      = "add-layer"
	OpRemoveLayer   = "remove-layer"
	OpAddPackage    = "add-package"
	OpRemovePackage = "remove-package"
)

// Change is one mechanical edit of a recipe's layers or packages.
type Change struct {
	Op      string `json:"op"`
	Layer   string `json:"layer,omitempty"`
	Package string `json:"package,omitempty"`
	// At is the position an added layer takes in the layers list (default: the end), or
	// for a removal, where the layer was (informational: a withdraw puts it back there).
	At *int `json:"at,omitempty"`
}

// Resolution is a fix a client can apply as is: its changes, in order.
type Resolution struct {
	Kind    string   `json:"kind"`
	Summary string   `json:"summary"`
	Changes []Change `json:"changes"`
}

// Objection is one reason a recipe cannot be built as it stands.
type Objection struct {
	Code  string `json:"code"`
	Level string `json:"level"`
	// Reason says in plain words what is wrong.
	Reason string `json:"reason"`
	// Layers and Packages name everything involved.
	Layers   []string `json:"layers"`
	Packages []string `json:"packages"`
	// Chain, for package objections, is the chain of dependencies that breaks, one step
	// per entry ("gnome-core depends on gdm3", "gdm3 breaks pulseaudio (<< 11.1-2)").
	Chain []string `json:"chain,omitempty"`
	// Resolutions are checked: applying any one gives a recipe with fewer objections.
	Resolutions []Resolution `json:"resolutions"`
}

var (
	layerIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	packagePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{1,127}$`)
)

// ErrBadChange is matched by Apply's error for a change that cannot be applied.
var ErrBadChange = errors.New("bad change")

// Apply returns a copy of r with the changes made in order. Adding what is there or
// removing what is not is an error (a stale resolution must not silently do nothing).
func Apply(r *recipe.Recipe, changes []Change) (*recipe.Recipe, error) {
	out := r.Clone()
	for i, c := range changes {
		if err := applyOne(out, c); err != nil {
			return nil, fmt.Errorf("%w: changes[%d]: %w", ErrBadChange, i, err)
		}
	}
	return out, nil
}

func applyOne(r *recipe.Recipe, c Change) error {
	switch c.Op {
	case OpAddLayer:
		if c.Layer == "" {
			return errors.New("add-layer needs a layer")
		}
		if slices.Contains(r.Layers, c.Layer) {
			return fmt.Errorf("layer %q is already listed", c.Layer)
		}
		at := len(r.Layers)
		if c.At != nil {
			if *c.At < 0 || *c.At > len(r.Layers) {
				return fmt.Errorf("position %d is outside the layers list (0-%d)", *c.At, len(r.Layers))
			}
			at = *c.At
		}
		r.Layers = slices.Insert(slices.Clone(r.Layers), at, c.Layer)
	case OpRemoveLayer:
		i := slices.Index(r.Layers, c.Layer)
		if i < 0 {
			return fmt.Errorf("layer %q is not listed", c.Layer)
		}
		r.Layers = slices.Delete(slices.Clone(r.Layers), i, i+1)
	case OpAddPackage:
		if c.Package == "" {
			return errors.New("add-package needs a package")
		}
		if slices.Contains(r.Packages, c.Package) {
			return fmt.Errorf("package %q is already listed", c.Package)
		}
		r.Packages = append(slices.Clone(r.Packages), c.Package)
	case OpRemovePackage:
		if !slices.Contains(r.Packages, c.Package) {
			return fmt.Errorf("package %q is not in the recipe's packages", c.Package)
		}
		r.Packages = slices.DeleteFunc(slices.Clone(r.Packages), func(p string) bool { return p == c.Package })
	default:
		return fmt.Errorf("unknown op %q (want %s, %s, %s or %s)", c.Op, OpAddLayer, OpRemoveLayer, OpAddPackage, OpRemovePackage)
	}
	return nil
}

// Inverse returns the change that undoes c.
func Inverse(c Change) (Change, error) {
	switch c.Op {
	case OpAddLayer:
		return Change{Op: OpRemoveLayer, Layer: c.Layer}, nil
	case OpRemoveLayer:
		return Change{Op: OpAddLayer, Layer: c.Layer, At: c.At}, nil
	case OpAddPackage:
		return Change{Op: OpRemovePackage, Package: c.Package}, nil
	case OpRemovePackage:
		return Change{Op: OpAddPackage, Package: c.Package}, nil
	}
	return Change{}, fmt.Errorf("%w: unknown op %q", ErrBadChange, c.Op)
}

// ValidateChange checks a client-supplied change (the "last change" of a check request).
func ValidateChange(c Change) error {
	switch c.Op {
	case OpAddLayer, OpRemoveLayer:
		if !layerIDPattern.MatchString(c.Layer) || c.Package != "" {
			return fmt.Errorf("%w: %s needs a layer id (and no package)", ErrBadChange, c.Op)
		}
	case OpAddPackage, OpRemovePackage:
		if !packagePattern.MatchString(c.Package) || c.Layer != "" || c.At != nil {
			return fmt.Errorf("%w: %s needs a package name (and no layer or position)", ErrBadChange, c.Op)
		}
	default:
		return fmt.Errorf("%w: unknown op %q (want %s, %s, %s or %s)", ErrBadChange, c.Op, OpAddLayer, OpRemoveLayer, OpAddPackage, OpRemovePackage)
	}
	if c.At != nil && (*c.At < 0 || *c.At > 50) {
		return fmt.Errorf("%w: position %d out of range", ErrBadChange, *c.At)
	}
	return nil
}

// ParseChange reads a change written OP:NAME (add-layer:gnome, remove-package:nano), as
// clients name their last change.
func ParseChange(s string) (Change, error) {
	op, name, ok := strings.Cut(s, ":")
	if !ok {
		return Change{}, fmt.Errorf("want OP:NAME, e.g. add-layer:gnome, got %q", s)
	}
	ch := Change{Op: op}
	switch op {
	case OpAddLayer, OpRemoveLayer:
		ch.Layer = name
	default:
		ch.Package = name
	}
	return ch, ValidateChange(ch)
}
