package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// requiredTools are the host programs a build runs (inside the sandbox).
var requiredTools = []string{"bwrap", "apt-get", "dpkg-deb", "mmdebstrap", "mksquashfs", "xorriso", "mkfs.fat", "mmd", "mcopy", "mkfs.ext4", "mount"}

// toolPackages are the host packages whose versions shape the image: they are pinned
// inputs, so a build machine with other versions makes another build key.
var toolPackages = []string{"apt", "dpkg", "mmdebstrap", "squashfs-tools", "xorriso", "mtools", "dosfstools"}

func checkTools() error {
	var missing []string
	for _, t := range requiredTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (install them with `make deps`)", ErrToolMissing, strings.Join(missing, ", "))
	}
	return nil
}

// MissingTools lists the build tools absent from this machine (for health checks).
func MissingTools() []string {
	var missing []string
	for _, t := range requiredTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

func toolVersions() map[string]string {
	out := map[string]string{}
	args := append([]string{"-W", "-f", "${Package} ${Version}\n"}, toolPackages...)
	data, _ := exec.Command("dpkg-query", args...).Output()
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if n, v, ok := strings.Cut(l, " "); ok {
			out[n] = v
		}
	}
	return out
}

// BuildKey is the build key of a recipe (by its hash) against pinned inputs: what a
// build with those inputs reports as Result.BuildKey.
func BuildKey(recipeHash string, pin Pinned) string { return buildKey(recipeHash, pin) }

// buildKey is the full sha256 over the recipe hash and every pinned input: the same key
// means the same image, and a mirror that moved on makes a new key, never a stale hit.
func buildKey(recipeHash string, pin Pinned) string {
	suites := make([]string, 0, len(pin.Suites))
	for s, d := range pin.Suites {
		suites = append(suites, s+"="+d)
	}
	sort.Strings(suites)
	tools := make([]string, 0, len(pin.Tools))
	for t, v := range pin.Tools {
		tools = append(tools, t+"="+v)
	}
	sort.Strings(tools)
	data, _ := json.Marshal(struct {
		Recipe  string   `json:"recipe"`
		Suites  []string `json:"suites"`
		Tools   []string `json:"tools"`
		Builder string   `json:"builder"`
	}{recipeHash, suites, tools, pin.Builder})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
