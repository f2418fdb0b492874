package recipe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestNormalizeFillsDefaults(t *testing.T) {
	r := minimal()
	r.Files = []File{{Path: "/b", Content: strp("x")}, {Path: "/a", ContentBase64: strp("/w==")}}
	r.Users = []User{{Name: "zed"}, {Name: "alice", Groups: []string{"video", "adm", "video"}}}
	r.Services = Services{Enable: []string{"ssh", "cron.service", "ssh"}, Disable: []string{"apt-daily.timer"}}
	r.Hostname = "MyHost"
	r.Normalize()
	if r.Base.Architecture != "amd64" || !equal(r.Base.Components, "main") || r.Base.Updates == nil || !*r.Base.Updates {
		t.Errorf("base defaults: %+v", r.Base)
	}
	if r.Hostname != "myhost" || r.Locale != "C.UTF-8" || r.Timezone != "UTC" || r.Keyboard.Layout != "us" {
		t.Errorf("setting defaults: %q %q %q %q", r.Hostname, r.Locale, r.Timezone, r.Keyboard.Layout)
	}
	if !equal(r.Boot, "bios", "uefi") || r.Image.Compression != "zstd" || r.Image.CompressionLevel != 15 {
		t.Errorf("boot/image defaults: %v %+v", r.Boot, r.Image)
	}
	if r.Files[0].Path != "/a" || r.Files[0].Mode != "0644" || r.Files[0].Owner != "root:root" {
		t.Errorf("files: %+v", r.Files)
	}
	// 0xff is not UTF-8: it stays base64; the text file stays text.
	if r.Files[0].ContentBase64 == nil || *r.Files[0].ContentBase64 != "/w==" || r.Files[1].Content == nil {
		t.Errorf("file content forms: %+v", r.Files)
	}
	if r.Users[0].Name != "alice" || !equal(r.Users[0].Groups, "adm", "video") || r.Users[0].Shell != "/bin/bash" {
		t.Errorf("users: %+v", r.Users)
	}
	if !equal(r.Services.Enable, "cron.service", "ssh.service") || !equal(r.Services.Disable, "apt-daily.timer") {
		t.Errorf("services: %+v", r.Services)
	}
	for name, def := range map[string]int{"zstd": 15, "gzip": 9, "xz": 0, "lz4": 0} {
		r := minimal()
		r.Image.Compression = name
		r.Normalize()
		if r.Image.CompressionLevel != def {
			t.Errorf("%s default level %d, want %d", name, r.Image.CompressionLevel, def)
		}
	}
}

func equal(got []string, want ...string) bool {
	return strings.Join(got, "\x00") == strings.Join(want, "\x00")
}

func TestNormalizeIsIdempotentAndCloneIsDeep(t *testing.T) {
	r := mustParse(t, string(readFull(t)), YAML)
	orig := r.Clone()
	n := r.Clone()
	n.Normalize()
	n.Files[0].Path = "/changed"
	*n.Files[2].Content = "changed"
	n.Users[0].Groups[0] = "changed"
	if r.Files[0].Path == "/changed" || *r.Files[1].Content == "changed" || r.Users[0].Groups[0] == "changed" {
		t.Fatal("Clone shares memory with the original")
	}
	_ = r.Hash()
	if _, err := r.Canonical(); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(r)
	b, _ := json.Marshal(orig)
	if !bytes.Equal(a, b) {
		t.Fatal("Canonical/Clone modified the recipe")
	}
	once := r.Clone()
	once.Normalize()
	twice := once.Clone()
	twice.Normalize()
	a, _ = json.Marshal(once)
	b, _ = json.Marshal(twice)
	if !bytes.Equal(a, b) {
		t.Fatalf("Normalize is not idempotent:\n%s\n%s", a, b)
	}
}

func TestCanonicalForm(t *testing.T) {
	r := mustParse(t, string(readFull(t)), YAML)
	c, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	// Compact, keys in schema order, no HTML escaping, no mirrors.
	var compacted bytes.Buffer
	if err := json.Compact(&compacted, c); err != nil || !bytes.Equal(compacted.Bytes(), c) || bytes.ContainsAny(c, "\n\t") {
		t.Errorf("not compact: %s", c)
	}
	if !bytes.HasPrefix(c, []byte(`{"apiVersion":"debate/v1","name":"workstation","description":`)) {
		t.Errorf("key order: %.80s", c)
	}
	if bytes.Contains(c, []byte(`\u003e`)) || !bytes.Contains(c, []byte(`> /etc/debate-release`)) {
		t.Errorf("HTML-escaped: %s", c)
	}
	if bytes.Contains(c, []byte("mirror")) || bytes.Contains(c, []byte("deb.debian.org")) {
		t.Errorf("canonical form carries a mirror: %s", c)
	}
	// The hash is the full SHA-256 of exactly these bytes.
	sum := sha256.Sum256(c)
	if h := r.Hash(); h != hex.EncodeToString(sum[:]) || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(h) {
		t.Errorf("Hash() = %s", h)
	}
	// The indented form is the same JSON.
	ind, err := r.CanonicalIndent()
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, ind); err != nil || !bytes.Equal(compact.Bytes(), c) {
		t.Errorf("indented form differs: %v", err)
	}
	// An invalid recipe has no canonical form.
	bad := minimal()
	bad.Name = "Bad Name"
	if _, err := bad.Canonical(); err == nil {
		t.Error("Canonical accepted an invalid recipe")
	}
	if h := bad.Hash(); len(h) != 64 {
		t.Errorf("Hash of invalid recipe = %q", h)
	}
}

// TestHashInvariance: what does not change the system does not change the hash; what
// does, does.
func TestHashInvariance(t *testing.T) {
	base := mustParse(t, string(readFull(t)), YAML)
	h0 := base.Hash()
	same := map[string]func(r *Recipe){
		"package order":      func(r *Recipe) { r.Packages = []string{"zsh", "curl", "vim-tiny", "openssh-server"} },
		"duplicate packages": func(r *Recipe) { r.Packages = append(r.Packages, "curl", "zsh") },
		"components order":   func(r *Recipe) { r.Base.Components = []string{"non-free-firmware", "main", "main"} },
		"explicit defaults":  func(r *Recipe) { r.Base.Architecture = "" },
		"file order":         func(r *Recipe) { r.Files[0], r.Files[2] = r.Files[2], r.Files[0] },
		"user order":         func(r *Recipe) { r.Users[0], r.Users[1] = r.Users[1], r.Users[0] },
		"group order":        func(r *Recipe) { r.Users[0].Groups = []string{"video", "adm", "audio", "adm"} },
		"bare service name":  func(r *Recipe) { r.Services.Enable = []string{"ssh.service"} },
		"service order":      func(r *Recipe) { r.Services.Disable = []string{"apt-daily-upgrade.timer", "apt-daily.timer"} },
		"boot order":         func(r *Recipe) { r.Boot = []string{"uefi", "bios"} },
		"mode digits":        func(r *Recipe) { r.Files[1].Mode = "755" },
		"text as base64": func(r *Recipe) {
			r.Files[0].Content, r.Files[0].ContentBase64 = nil, strp("V2VsY29tZSB0byB0aGUgd29ya3N0YXRpb24uCg==")
		},
		"wrapped base64":      func(r *Recipe) { r.Files[2].ContentBase64 = strp("AAEC\nAwT/\n") },
		"other mirror":        func(r *Recipe) { r.Base.Mirror = "http://ftp.de.debian.org/debian" },
		"no mirror":           func(r *Recipe) { r.Base.Mirror, r.Base.SecurityMirror = "", "" },
		"hostname case":       func(r *Recipe) { r.Hostname = "WorkStation" },
		"ssh key blanks":      func(r *Recipe) { r.Users[0].SSHKeys[0] = strings.ReplaceAll(testEd25519, " ", "   ") },
		"default compression": func(r *Recipe) { r.Image.Compression = "" },
	}
	for name, mutate := range same {
		r := base.Clone()
		mutate(r)
		if err := Validate(r); err != nil {
			t.Fatalf("%s: test recipe invalid: %v", name, err)
		}
		if h := r.Hash(); h != h0 {
			c1, _ := base.Canonical()
			c2, _ := r.Canonical()
			t.Errorf("%s changed the hash:\n%s\n%s", name, c1, c2)
		}
	}
	f := false
	different := map[string]func(r *Recipe){
		"layer order":       func(r *Recipe) { r.Layers[0], r.Layers[1] = r.Layers[1], r.Layers[0] },
		"script order":      func(r *Recipe) { r.Scripts = append(r.Scripts, Script{Name: "z", Run: "true"}) },
		"cmdline order":     func(r *Recipe) { r.Kernel.Cmdline = []string{"loglevel=3", "quiet"} },
		"one more package":  func(r *Recipe) { r.Packages = append(r.Packages, "htop") },
		"file content":      func(r *Recipe) { *r.Files[0].Content += " " },
		"file mode":         func(r *Recipe) { r.Files[1].Mode = "0750" },
		"file owner":        func(r *Recipe) { r.Files[1].Owner = "root:adm" },
		"updates off":       func(r *Recipe) { r.Base.Updates = &f },
		"snapshot":          func(r *Recipe) { r.Base.Snapshot = "20250521T000000Z" },
		"no snapshot":       func(r *Recipe) { r.Base.Snapshot = "" },
		"description":       func(r *Recipe) { r.Description = "other" },
		"name":              func(r *Recipe) { r.Name = "other" },
		"sudo":              func(r *Recipe) { r.Users[0].Sudo = false },
		"password":          func(r *Recipe) { r.Users[0].PasswordHash = "" },
		"shell":             func(r *Recipe) { r.Users[0].Shell = "/bin/bash" },
		"service moved":     func(r *Recipe) { r.Services.Disable = r.Services.Disable[:1] },
		"compression level": func(r *Recipe) { r.Image.CompressionLevel = 15 },
		"boot mode":         func(r *Recipe) { r.Boot = []string{"uefi"} },
		"keyboard variant":  func(r *Recipe) { r.Keyboard.Variant = "" },
		"timezone":          func(r *Recipe) { r.Timezone = "UTC" },
	}
	seen := map[string]string{h0: "base"}
	for name, mutate := range different {
		r := base.Clone()
		mutate(r)
		if err := Validate(r); err != nil {
			t.Fatalf("%s: test recipe invalid: %v", name, err)
		}
		h := r.Hash()
		if other, dup := seen[h]; dup {
			t.Errorf("%s has the same hash as %s", name, other)
		}
		seen[h] = name
	}
}

// TestHashYAMLvsJSON: the same recipe written in YAML and in hand-written JSON (not the
// canonical form) hashes the same.
func TestHashYAMLvsJSON(t *testing.T) {
	y := mustParse(t, `apiVersion: debate/v1
name: web
base: {distribution: debian, release: bookworm, components: [main]}
packages: [nginx, curl]
files:
  - path: /var/www/html/index.html
    content: "<h1>hi</h1>\n"
    mode: 0644
services: {enable: [nginx]}
`, YAML)
	j := mustParse(t, `{
  "name": "web",
  "apiVersion": "debate/v1",
  "packages": ["curl", "nginx", "curl"],
  "base": {"release": "bookworm", "distribution": "debian", "updates": true},
  "files": [{"path": "/var/www/html/index.html", "contentBase64": "PGgxPmhpPC9oMT4K", "owner": "root:root"}],
  "services": {"enable": ["nginx.service"], "disable": []},
  "hostname": "debate"
}`, JSON)
	if y.Hash() != j.Hash() {
		a, _ := y.Canonical()
		b, _ := j.Canonical()
		t.Fatalf("hashes differ:\n%s\n%s", a, b)
	}
}
