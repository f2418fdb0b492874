package resolve

import (
	"testing"
)

// typicalRecipe is one platform, a few bundles and about twenty named packages.
func typicalRecipe() []string {
	return []string{"vim", "git", "curl", "htop", "tmux", "rsync", "jq", "tree", "ncdu", "wget",
		"openssh-client", "gnupg", "zip", "unzip", "less", "man-db", "python3", "bash-completion", "ca-certificates", "iproute2"}
}

func BenchmarkCheckTypical(b *testing.B) {
	c := realChecker(b)
	r := withLayers("debian-bookworm", "xfce", "theme-arc-dark", "browser", "office", "developer-tools", "locale-en-us")
	r.Packages = typicalRecipe()
	for b.Loop() {
		rep, err := c.Check(r, nil)
		if err != nil || !rep.Sustained {
			b.Fatalf("%v %v", err, rep)
		}
	}
}
