package recipe

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Clone returns a deep copy of r: nothing in the copy shares memory with r.
func (r *Recipe) Clone() *Recipe {
	c := *r
	c.Base.Components = slices.Clone(r.Base.Components)
	if r.Base.Updates != nil {
		u := *r.Base.Updates
		c.Base.Updates = &u
	}
	c.Packages = slices.Clone(r.Packages)
	c.Layers = slices.Clone(r.Layers)
	c.Files = CloneFiles(r.Files)
	if r.Users != nil {
		c.Users = make([]User, len(r.Users))
		for i, u := range r.Users {
			u.Groups = slices.Clone(u.Groups)
			u.SSHKeys = slices.Clone(u.SSHKeys)
			c.Users[i] = u
		}
	}
	c.Services.Enable = slices.Clone(r.Services.Enable)
	c.Services.Disable = slices.Clone(r.Services.Disable)
	c.Kernel.Cmdline = slices.Clone(r.Kernel.Cmdline)
	c.Boot = slices.Clone(r.Boot)
	c.Scripts = slices.Clone(r.Scripts)
	return &c
}

// CloneFiles deep-copies files, content pointers included.
func CloneFiles(files []File) []File {
	if files == nil {
		return nil
	}
	out := make([]File, len(files))
	for i, f := range files {
		if f.Content != nil {
			s := *f.Content
			f.Content = &s
		}
		if f.ContentBase64 != nil {
			s := *f.ContentBase64
			f.ContentBase64 = &s
		}
		out[i] = f
	}
	return out
}

// Normalize rewrites r in place into its normal form: every default filled in, every set
// sorted and de-duplicated, files sorted by path and users by name, modes written with
// four digits, bare unit names completed with ".service", file content stored as content
// when it is UTF-8 text and as contentBase64 otherwise. Ordered lists (layers, scripts,
// kernel.cmdline) keep their order. Normalize never fails; on an invalid recipe it does
// what it can, so validate first (Parse does).
//
// The mirrors are kept: the builder needs them. Only the canonical form leaves them out.
func (r *Recipe) Normalize() {
	b := &r.Base
	b.Architecture = orDefault(b.Architecture, DefaultArchitecture)
	b.Components = sortedSet(b.Components)
	if len(b.Components) == 0 {
		b.Components = []string{DefaultComponent}
	}
	if b.Updates == nil {
		t := true
		b.Updates = &t
	}
	r.Packages = sortedSet(r.Packages)
	r.Layers = nonNil(r.Layers)

	r.Files = nonNil(r.Files)
	for i := range r.Files {
		normalizeFile(&r.Files[i])
	}
	sort.SliceStable(r.Files, func(i, j int) bool { return r.Files[i].Path < r.Files[j].Path })

	r.Users = nonNil(r.Users)
	for i := range r.Users {
		u := &r.Users[i]
		u.Groups = sortedSet(u.Groups)
		for j, k := range u.SSHKeys {
			// Runs of blanks between the fields of a key line mean nothing.
			u.SSHKeys[j] = strings.Join(strings.Fields(k), " ")
		}
		u.SSHKeys = sortedSet(u.SSHKeys)
		u.Shell = orDefault(u.Shell, DefaultShell)
	}
	sort.SliceStable(r.Users, func(i, j int) bool { return r.Users[i].Name < r.Users[j].Name })

	// Host names are case-insensitive (RFC 4343).
	r.Hostname = strings.ToLower(orDefault(r.Hostname, DefaultHostname))
	r.Locale = orDefault(r.Locale, DefaultLocale)
	r.Timezone = orDefault(r.Timezone, DefaultTimezone)
	r.Keyboard.Layout = orDefault(r.Keyboard.Layout, DefaultLayout)

	r.Services.Enable = normalizeUnits(r.Services.Enable)
	r.Services.Disable = normalizeUnits(r.Services.Disable)
	r.Kernel.Cmdline = nonNil(r.Kernel.Cmdline)
	r.Boot = sortedSet(r.Boot)
	if len(r.Boot) == 0 {
		r.Boot = []string{"bios", "uefi"}
	}
	r.Image.Compression = orDefault(r.Image.Compression, DefaultCompression)
	if r.Image.CompressionLevel == 0 {
		_, _, r.Image.CompressionLevel = compressionLevels(r.Image.Compression)
	}
	r.Scripts = nonNil(r.Scripts)
}

func normalizeFile(f *File) {
	f.Mode = orDefault(f.Mode, DefaultFileMode)
	if modeRE.MatchString(f.Mode) {
		if m, err := strconv.ParseUint(f.Mode, 8, 32); err == nil {
			f.Mode = fmt.Sprintf("%04o", m)
		}
	}
	f.Owner = orDefault(f.Owner, DefaultFileOwner)
	var data []byte
	switch {
	case f.Content != nil && f.ContentBase64 != nil:
		return // invalid; nothing sensible to choose
	case f.Content != nil:
		data = []byte(*f.Content)
	case f.ContentBase64 != nil:
		d, err := decodeBase64(*f.ContentBase64)
		if err != nil {
			return
		}
		data = d
	default:
		return
	}
	// The same bytes must give the same canonical form however they were written.
	if utf8.Valid(data) {
		s := string(data)
		f.Content, f.ContentBase64 = &s, nil
	} else {
		s := base64.StdEncoding.EncodeToString(data)
		f.Content, f.ContentBase64 = nil, &s
	}
}

func normalizeUnits(units []string) []string {
	out := make([]string, len(units))
	for i, u := range units {
		out[i] = NormalizeUnit(u)
	}
	return sortedSet(out)
}

// sortedSet returns the sorted, de-duplicated, non-nil copy of a set.
func sortedSet(s []string) []string {
	out := slices.Clone(s)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Canonical returns the canonical bytes of r: the normal form (see Normalize) without the
// mirrors, encoded as compact JSON with keys in schema order and no HTML escaping. It is
// what Hash hashes. It fails with a *ValidationError when r is invalid. r is not modified.
func (r *Recipe) Canonical() ([]byte, error) {
	if err := Validate(r); err != nil {
		return nil, err
	}
	return r.canonical(), nil
}

// CanonicalIndent is Canonical indented for people to read. It is for display only: the
// hash is over Canonical's compact bytes.
func (r *Recipe) CanonicalIndent() ([]byte, error) {
	data, err := r.Canonical()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		return nil, fmt.Errorf("recipe: indenting canonical JSON: %w", err)
	}
	return out.Bytes(), nil
}

// Hash returns the recipe hash: the full lowercase hex SHA-256 of the canonical bytes.
// Recipes that mean the same system (packages in another order, file content as text or as
// base64, YAML or JSON) have the same hash; any change of meaning, including the order of
// layers, changes it. Which mirror serves the packages does not: the build key covers the
// mirror's pinned Release digests instead.
//
// Hash is meant for valid recipes (Parse returns only those). On an invalid one it still
// returns the hash of its best-effort normal form, never panicking.
func (r *Recipe) Hash() string {
	sum := sha256.Sum256(r.canonical())
	return hex.EncodeToString(sum[:])
}

func (r *Recipe) canonical() []byte {
	n := r.Clone()
	n.Normalize()
	n.Base.Mirror, n.Base.SecurityMirror = "", ""
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(n); err != nil {
		// Every field is a string, bool, int or slice of them: encoding cannot fail.
		panic(fmt.Sprintf("recipe: encoding canonical JSON: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
