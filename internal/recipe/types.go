// Package recipe owns the declarative description of a system ("speech"): its schema,
// parsing from YAML or JSON, strict validation with field paths, the canonical form and
// the recipe hash. It imports no other package of this project.
package recipe

// APIVersion is the only recipe schema version this builder understands.
const APIVersion = "debate/v1"

// Recipe is a parsed, validated recipe. After Normalize, every default is filled in and
// every set is sorted and de-duplicated, so that two recipes meaning the same system have
// the same canonical bytes.
type Recipe struct {
	APIVersion  string `json:"apiVersion"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Base is the opening statement: the distribution the image starts from.
	Base Base `json:"base"`
	// Packages is a set: order and duplicates do not matter.
	Packages []string `json:"packages"`
	// Layers is ordered: a later layer overrides an earlier one's files and settings.
	Layers   []string `json:"layers"`
	Files    []File   `json:"files"`
	Users    []User   `json:"users"`
	Hostname string   `json:"hostname"`
	Locale   string   `json:"locale"`
	Timezone string   `json:"timezone"`
	Keyboard Keyboard `json:"keyboard"`
	Services Services `json:"services"`
	Kernel   Kernel   `json:"kernel"`
	// Boot is the set of firmware modes the ISO boots in: "bios", "uefi".
	Boot []string `json:"boot"`
	// Image holds settings of the produced image itself.
	Image Image `json:"image"`
	// Scripts run inside the image, in order, at the end of customisation, with no network.
	Scripts []Script `json:"scripts"`
}

// Base is the opening statement.
type Base struct {
	Distribution string `json:"distribution"` // "debian"
	Release      string `json:"release"`      // "bookworm"
	Architecture string `json:"architecture"` // "amd64"
	// Mirror is the archive URL. Empty means the builder's configured mirror (by default the
	// machine's own apt source). It is left empty in the canonical form on purpose: which
	// mirror served the files does not change them; the pinned Release digests, which the
	// build key covers, do.
	Mirror         string `json:"mirror,omitempty"`
	SecurityMirror string `json:"securityMirror,omitempty"`
	// Snapshot, when set, is a UTC timestamp (20250520T000000Z) of a dated archive snapshot.
	Snapshot string `json:"snapshot,omitempty"`
	// Components of the archive, a set; default ["main"].
	Components []string `json:"components"`
	// Updates adds the release's -updates and -security suites; default true.
	Updates *bool `json:"updates"`
}

// File is placed into the image at customisation.
type File struct {
	Path string `json:"path"`
	// Exactly one of Content (text) and ContentBase64 is set. The canonical form keeps valid
	// UTF-8 as Content and everything else as ContentBase64.
	Content       *string `json:"content,omitempty"`
	ContentBase64 *string `json:"contentBase64,omitempty"`
	Mode          string  `json:"mode"`  // octal, e.g. "0644"; default "0644"
	Owner         string  `json:"owner"` // "user:group"; default "root:root"
}

// User is an account created in the image.
type User struct {
	Name string `json:"name"`
	// PasswordHash is a crypt(3) hash ($y$, $gy$, $7$, $6$, $5$). Without it the password
	// is locked.
	PasswordHash string   `json:"passwordHash,omitempty"`
	Groups       []string `json:"groups"` // a set
	Sudo         bool     `json:"sudo"`
	SSHKeys      []string `json:"sshKeys"` // a set of authorized_keys lines
	Shell        string   `json:"shell"`   // default "/bin/bash"
}

// Keyboard is the console and X keyboard layout.
type Keyboard struct {
	Layout  string `json:"layout"` // default "us"
	Variant string `json:"variant"`
}

// Services are systemd units enabled or disabled in the image; both are sets.
type Services struct {
	Enable  []string `json:"enable"`
	Disable []string `json:"disable"`
}

// Kernel holds additions to the kernel command line, in order.
type Kernel struct {
	Cmdline []string `json:"cmdline"`
}

// Image holds settings of the produced ISO.
type Image struct {
	// Compression of the squashfs: "zstd" (default), "xz", "lz4" or "gzip".
	Compression string `json:"compression"`
	// CompressionLevel for zstd (1-22, default 15) and gzip (1-9, default 9); 0 means the
	// default. xz and lz4 take no level (mksquashfs has none for them): it must be 0.
	CompressionLevel int `json:"compressionLevel"`
}

// Script is a shell script run inside the image with /bin/sh.
type Script struct {
	Name string `json:"name"`
	Run  string `json:"run"`
}
