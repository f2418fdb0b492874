package recipe

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Validate checks every field of r against its grammar and limits, and the fields against
// each other, and reports every problem at once as a *ValidationError (nil when r is
// valid). It accepts a recipe as written (empty fields mean "default") as well as a
// normalised one.
//
// Two checks look at the host: the snapshot must not be in the future, and when
// /usr/share/zoneinfo exists the timezone must be a zone in it.
func Validate(r *Recipe) error {
	c := &checker{now: time.Now(), zoneDir: "/usr/share/zoneinfo"}
	c.recipe(r)
	return c.err()
}

type checker struct {
	problems
	now     time.Time
	zoneDir string
}

func (c *checker) recipe(r *Recipe) {
	switch {
	case r.APIVersion == "":
		c.add("apiVersion", CodeRequired, "is required; write apiVersion: %s", APIVersion)
	case r.APIVersion != APIVersion:
		c.add("apiVersion", CodeUnsupported, "%q is not supported; this builder reads %s", r.APIVersion, APIVersion)
	}
	switch {
	case r.Name == "":
		c.add("name", CodeRequired, "is required (it names the ISO file)")
	case !nameRE.MatchString(r.Name):
		c.add("name", CodeInvalid, "%q must be 1-63 lowercase letters, digits and '-', starting with a letter or digit (it names the ISO file)", clip(r.Name))
	}
	c.description(r.Description)
	c.base(&r.Base)
	c.packages(r.Packages)
	c.layers(r.Layers)
	c.files(r)
	c.users(r.Users)
	c.hostname(r.Hostname)
	if r.Locale != "" && !localeRE.MatchString(r.Locale) {
		c.add("locale", CodeInvalid, "%q must be a UTF-8 locale such as en_US.UTF-8 or C.UTF-8", clip(r.Locale))
	}
	c.timezone(r.Timezone)
	if r.Keyboard.Layout != "" && !layoutRE.MatchString(r.Keyboard.Layout) {
		c.add("keyboard.layout", CodeInvalid, "%q must be an XKB layout name of 2-8 lowercase letters, such as us or de", clip(r.Keyboard.Layout))
	}
	if !variantRE.MatchString(r.Keyboard.Variant) {
		c.add("keyboard.variant", CodeInvalid, "%q must be an XKB variant of up to 32 lowercase letters, digits, '_' and '-', such as nodeadkeys", clip(r.Keyboard.Variant))
	}
	c.services(&r.Services)
	c.cmdline(r.Kernel.Cmdline)
	c.boot(r.Boot)
	c.image(&r.Image)
	c.scripts(r.Scripts)
	// The canonical form is what gets stored and parsed again, so it must fit the same
	// limit as a document; JSON escaping can make it larger than the source.
	if len(c.errs) == 0 {
		if n := len(r.canonical()); n > MaxRecipeBytes {
			c.add("", CodeTooLarge, "the recipe's canonical form is %d bytes; the limit is %d bytes (1 MiB): make the files smaller", n, MaxRecipeBytes)
		}
	}
}

func (c *checker) description(s string) {
	switch {
	case !utf8.ValidString(s):
		c.add("description", CodeInvalid, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > maxDescription:
		c.add("description", CodeTooLong, "is %d characters; the limit is %d", utf8.RuneCountInString(s), maxDescription)
	default:
		for _, ch := range s {
			if unicode.IsControl(ch) && ch != '\n' && ch != '\t' {
				c.add("description", CodeInvalid, "contains the control character %U; only newlines and tabs are allowed", ch)
				return
			}
		}
	}
}

func (c *checker) base(b *Base) {
	dists := SupportedDistributions()
	distOK := false
	switch {
	case b.Distribution == "":
		c.add("base.distribution", CodeRequired, "is required; supported: %s", strings.Join(dists, ", "))
	case !slices.Contains(dists, b.Distribution):
		c.add("base.distribution", CodeUnsupported, "%q is not supported; supported: %s", clip(b.Distribution), strings.Join(dists, ", "))
	default:
		distOK = true
	}
	if distOK {
		rels := SupportedReleases(b.Distribution)
		switch {
		case b.Release == "":
			c.add("base.release", CodeRequired, "is required; supported for %s: %s", b.Distribution, strings.Join(rels, ", "))
		case !slices.Contains(rels, b.Release):
			c.add("base.release", CodeUnsupported, "%q is not supported for %s; supported: %s", clip(b.Release), b.Distribution, strings.Join(rels, ", "))
		}
		archs := SupportedArchitectures(b.Distribution)
		if b.Architecture != "" && !slices.Contains(archs, b.Architecture) {
			c.add("base.architecture", CodeUnsupported, "%q is not supported; supported: %s", clip(b.Architecture), strings.Join(archs, ", "))
		}
	} else if b.Release == "" {
		c.add("base.release", CodeRequired, "is required")
	}
	c.mirror("base.mirror", b.Mirror)
	c.mirror("base.securityMirror", b.SecurityMirror)
	if b.Snapshot != "" {
		c.snapshot(b.Snapshot)
	}
	comps := supportedComponents()
	for i, comp := range b.Components {
		if !slices.Contains(comps, comp) {
			c.add(index("base.components", i), CodeInvalid, "%q is not an archive component; use %s", clip(comp), strings.Join(comps, ", "))
		}
	}
	if len(b.Components) > 0 && !slices.Contains(b.Components, DefaultComponent) {
		c.add("base.components", CodeInvalid, "must include main: no bootable system can be built without it")
	}
}

// mirror checks an archive URL: it reaches mmdebstrap's command line and apt's sources, so
// only plain absolute http(s) URLs of unremarkable characters pass.
func (c *checker) mirror(p, s string) {
	if s == "" {
		return
	}
	if len(s) > maxMirrorURL {
		c.add(p, CodeTooLong, "is %d bytes; the limit is %d", len(s), maxMirrorURL)
		return
	}
	for _, ch := range s {
		if !(ch < utf8.RuneSelf && (isAlnum(byte(ch)) || strings.ContainsRune("-._~:/%+[]", ch))) {
			c.add(p, CodeInvalid, "contains %q; a mirror URL may only hold letters, digits and - . _ ~ : / %% + [ ]", ch)
			return
		}
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		c.add(p, CodeInvalid, "is not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		c.add(p, CodeInvalid, "must be an absolute http:// or https:// URL")
	case u.Host == "" || u.Opaque != "":
		c.add(p, CodeInvalid, "must name a host, like http://deb.debian.org/debian")
	}
}

func (c *checker) snapshot(s string) {
	if !snapshotRE.MatchString(s) {
		c.add("base.snapshot", CodeInvalid, "%q must be a UTC timestamp like 20250520T000000Z", clip(s))
		return
	}
	t, err := time.Parse("20060102T150405Z", s)
	if err != nil {
		c.add("base.snapshot", CodeInvalid, "%q is not a real date and time", s)
		return
	}
	if t.After(c.now) {
		c.add("base.snapshot", CodeInvalid, "%s is in the future; a snapshot can only name a past moment", s)
	}
}

func (c *checker) packages(pkgs []string) {
	if len(pkgs) > maxPackages {
		c.add("packages", CodeTooMany, "has %d entries; the limit is %d", len(pkgs), maxPackages)
		return
	}
	for i, p := range pkgs {
		switch {
		case len(p) > maxPackageName:
			c.add(index("packages", i), CodeTooLong, "is %d bytes; the limit is %d", len(p), maxPackageName)
		case !packageRE.MatchString(p):
			c.add(index("packages", i), CodeInvalid, "%q is not a Debian package name (lowercase letters, digits, + - and ., at least 2 characters, no version or architecture)", clip(p))
		}
	}
}

func (c *checker) layers(ids []string) {
	if len(ids) > maxLayers {
		c.add("layers", CodeTooMany, "has %d entries; the limit is %d", len(ids), maxLayers)
		return
	}
	seen := map[string]int{}
	for i, id := range ids {
		p := index("layers", i)
		if !nameRE.MatchString(id) {
			c.add(p, CodeInvalid, "%q is not a layer id (1-63 lowercase letters, digits and '-')", clip(id))
			continue
		}
		if j, dup := seen[id]; dup {
			c.add(p, CodeDuplicate, "%q is already layers[%d]; layers are ordered, so list each once", id, j)
			continue
		}
		seen[id] = i
	}
}

func (c *checker) files(r *Recipe) {
	if len(r.Files) > maxFiles {
		c.add("files", CodeTooMany, "has %d entries; the limit is %d", len(r.Files), maxFiles)
		return
	}
	owned := settingFiles()
	keyHolders := map[string]bool{}
	for _, u := range r.Users {
		if len(u.SSHKeys) > 0 {
			keyHolders[homeOf(u.Name)+"/.ssh/authorized_keys"] = true
		}
	}
	seen := map[string]int{}
	total := 0
	for i, f := range r.Files {
		p := index("files", i)
		if c.filePath(field(p, "path"), f.Path) {
			if j, dup := seen[f.Path]; dup {
				c.add(field(p, "path"), CodeDuplicate, "%s is already files[%d].path", f.Path, j)
			} else {
				seen[f.Path] = i
			}
			if setting, ok := owned[f.Path]; ok {
				c.add(field(p, "path"), CodeConflict, "%s is written from the %s setting; use %s instead of a file", f.Path, setting, setting)
			}
			if keyHolders[f.Path] {
				c.add(field(p, "path"), CodeConflict, "%s is written from the user's sshKeys; list the keys there instead", f.Path)
			}
		}
		n, ok := c.fileContent(p, f)
		if ok {
			total += n
		}
		if f.Mode != "" {
			if !modeRE.MatchString(f.Mode) {
				c.add(field(p, "mode"), CodeInvalid, "%q must be an octal mode like \"0644\" or \"0755\"", clip(f.Mode))
			} else if m, _ := strconv.ParseUint(f.Mode, 8, 32); m&0o7000 != 0 {
				c.add(field(p, "mode"), CodeInvalid, "%s sets setuid, setgid or sticky bits; a recipe must not plant setuid programs, so only permission bits (at most 0777) are allowed", f.Mode)
			}
		}
		if f.Owner != "" {
			user, group, found := strings.Cut(f.Owner, ":")
			if !found || !accountRE.MatchString(user) || !accountRE.MatchString(group) {
				c.add(field(p, "owner"), CodeInvalid, "%q must be user:group with Debian account names, like root:root", clip(f.Owner))
			}
		}
	}
	if total > maxAllFilesBytes {
		c.add("files", CodeTooLong, "file contents total %d bytes; the limit is %d (1 MiB)", total, maxAllFilesBytes)
	}
}

// filePath reports whether p is an acceptable file path, adding a problem if not.
func (c *checker) filePath(fp, p string) bool {
	switch {
	case p == "":
		c.add(fp, CodeRequired, "is required: the absolute path of the file in the image")
	case len(p) > maxFilePath:
		c.add(fp, CodeTooLong, "is %d bytes; the limit is %d", len(p), maxFilePath)
	case strings.ContainsAny(p, "\x00\n\r"):
		c.add(fp, CodeInvalid, "must not contain NUL or line breaks")
	case !strings.HasPrefix(p, "/"):
		c.add(fp, CodeInvalid, "%q must be absolute (start with /)", clip(p))
	case slices.Contains(strings.Split(p, "/"), ".."):
		c.add(fp, CodeInvalid, "%q must not contain '..'", clip(p))
	case path.Clean(p) != p:
		c.add(fp, CodeInvalid, "%q is not clean; write %q", clip(p), clip(path.Clean(p)))
	case p == "/":
		c.add(fp, CodeInvalid, "must name a file, not /")
	case !filePathRE.MatchString(p):
		c.add(fp, CodeInvalid, "%q may only hold letters, digits and / . _ + @ , : = ~ -", clip(p))
	default:
		for _, comp := range strings.Split(p[1:], "/") {
			if len(comp) > maxPathComponent {
				c.add(fp, CodeTooLong, "has a name of %d bytes; the limit is %d", len(comp), maxPathComponent)
				return false
			}
		}
		for _, root := range forbiddenRoots() {
			if p == root || strings.HasPrefix(p, root+"/") {
				c.add(fp, CodeInvalid, "%s is under %s, which the running system mounts over; a file there would never be seen", p, root)
				return false
			}
		}
		return true
	}
	return false
}

// fileContent checks that exactly one content field is set and returns the decoded size.
func (c *checker) fileContent(p string, f File) (int, bool) {
	var n int
	switch {
	case f.Content != nil && f.ContentBase64 != nil:
		c.add(p, CodeConflict, "sets both content and contentBase64; set exactly one")
		return 0, false
	case f.Content != nil:
		n = len(*f.Content)
	case f.ContentBase64 != nil:
		data, err := decodeBase64(*f.ContentBase64)
		if err != nil {
			c.add(field(p, "contentBase64"), CodeInvalid, "is not valid base64 (standard alphabet, with padding): %v", err)
			return 0, false
		}
		n = len(data)
	default:
		c.add(field(p, "content"), CodeRequired, "one of content and contentBase64 is required (an empty file is content: \"\")")
		return 0, false
	}
	if n > maxFileBytes {
		field := field(p, "content")
		if f.ContentBase64 != nil {
			field = p + ".contentBase64"
		}
		c.add(field, CodeTooLong, "is %d bytes; the limit is %d (256 KiB) per file", n, maxFileBytes)
	}
	return n, true
}

// decodeBase64 accepts standard base64, ignoring line breaks and spaces (as a YAML block
// scalar or `base64` output would have them).
func decodeBase64(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(clean)
}

func homeOf(user string) string {
	if user == "root" {
		return "/root"
	}
	return "/home/" + user
}

func (c *checker) users(users []User) {
	if len(users) > maxUsers {
		c.add("users", CodeTooMany, "has %d entries; the limit is %d", len(users), maxUsers)
		return
	}
	reserved := reservedAccounts()
	seen := map[string]int{}
	for i, u := range users {
		p := index("users", i)
		np := field(p, "name")
		switch {
		case u.Name == "":
			c.add(np, CodeRequired, "is required")
		case !accountRE.MatchString(u.Name):
			c.add(np, CodeInvalid, "%q must be 1-32 lowercase letters, digits, '_' and '-', starting with a letter or '_'", clip(u.Name))
		case slices.Contains(reserved, u.Name):
			c.add(np, CodeInvalid, "%q is a name the base system already uses; choose another", u.Name)
		default:
			if j, dup := seen[u.Name]; dup {
				c.add(np, CodeDuplicate, "%q is already users[%d]; give each user one entry", u.Name, j)
			}
			seen[u.Name] = i
		}
		if u.PasswordHash != "" {
			c.passwordHash(field(p, "passwordHash"), u.PasswordHash)
		}
		if u.Name == "root" {
			// root exists already; a recipe may let people in as root (password, keys) but
			// not reshape the account the whole system depends on.
			if len(u.Groups) > 0 {
				c.add(field(p, "groups"), CodeInvalid, "root's groups cannot be changed; root may only get passwordHash and sshKeys")
			}
			if u.Sudo {
				c.add(field(p, "sudo"), CodeInvalid, "root needs no sudo; root may only get passwordHash and sshKeys")
			}
			if u.Shell != "" && u.Shell != DefaultShell {
				c.add(field(p, "shell"), CodeInvalid, "root's shell stays %s; root may only get passwordHash and sshKeys", DefaultShell)
			}
		}
		if len(u.Groups) > maxGroups {
			c.add(field(p, "groups"), CodeTooMany, "has %d entries; the limit is %d", len(u.Groups), maxGroups)
		} else {
			for j, g := range u.Groups {
				if !accountRE.MatchString(g) {
					c.add(index(field(p, "groups"), j), CodeInvalid, "%q is not a group name (lowercase letters, digits, '_' and '-', starting with a letter or '_')", clip(g))
				}
			}
		}
		if len(u.SSHKeys) > maxSSHKeys {
			c.add(field(p, "sshKeys"), CodeTooMany, "has %d entries; the limit is %d", len(u.SSHKeys), maxSSHKeys)
		} else {
			for j, k := range u.SSHKeys {
				c.sshKey(index(field(p, "sshKeys"), j), k)
			}
		}
		if u.Shell != "" && !slices.Contains(Shells(), u.Shell) {
			c.add(field(p, "shell"), CodeInvalid, "%q is not an allowed shell; use one of %s", clip(u.Shell), strings.Join(Shells(), ", "))
		}
	}
}

func (c *checker) passwordHash(p, h string) {
	known := passwordHashPrefixes()
	hasPrefix := slices.ContainsFunc(known, func(pre string) bool { return strings.HasPrefix(h, pre) })
	switch {
	case len(h) > maxPasswordHash:
		c.add(p, CodeTooLong, "is %d bytes; the limit is %d", len(h), maxPasswordHash)
	case strings.ContainsAny(h, ": \t\r\n"):
		c.add(p, CodeInvalid, "must not contain ':' or whitespace")
	case !hasPrefix:
		c.add(p, CodeInvalid, "must be a crypt(3) hash starting with one of %s (make one with: mkpasswd -m yescrypt)", strings.Join(known, " "))
	case !passwordHashRE.MatchString(h):
		c.add(p, CodeInvalid, "contains characters outside the crypt(3) alphabet [A-Za-z0-9./] and $ = ,")
	default:
		// The salt and the hash proper follow the method: "$y$params$salt$hash".
		parts := strings.Split(h, "$")
		if len(parts) < 4 || parts[len(parts)-1] == "" || parts[len(parts)-2] == "" {
			c.add(p, CodeInvalid, "is incomplete: a crypt(3) hash has a salt and a hash after the method, like $6$salt$hash")
		}
	}
}

// sshKey checks one authorized_keys line: "type base64-blob [comment]" with no options,
// where the blob decodes and names the same key type.
func (c *checker) sshKey(p, k string) {
	if len(k) > maxSSHKeyLine {
		c.add(p, CodeTooLong, "is %d bytes; the limit is %d", len(k), maxSSHKeyLine)
		return
	}
	if strings.ContainsAny(k, "\x00\r\n") {
		c.add(p, CodeInvalid, "must be a single line")
		return
	}
	if !utf8.ValidString(k) || strings.ContainsFunc(k, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }) {
		c.add(p, CodeInvalid, "contains control characters")
		return
	}
	fields := strings.Fields(k)
	types := sshKeyTypes()
	if len(fields) < 2 || !slices.Contains(types, fields[0]) {
		c.add(p, CodeInvalid, "must be a public key line starting with a key type (%s) and no options", strings.Join(types, ", "))
		return
	}
	if !base64RE.MatchString(fields[1]) {
		c.add(p, CodeInvalid, "the key data after %s is not base64", fields[0])
		return
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		c.add(p, CodeInvalid, "the key data after %s is not valid base64: %v", fields[0], err)
		return
	}
	// The blob starts with the key type as an SSH string (uint32 length, bytes); a line
	// whose declared type disagrees is damaged or pasted wrong.
	if len(blob) < 4 {
		c.add(p, CodeInvalid, "the key data is too short to be a public key")
		return
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || !bytes.Equal(blob[4:4+n], []byte(fields[0])) {
		c.add(p, CodeInvalid, "the key data is not a %s public key", fields[0])
	}
}

func (c *checker) hostname(h string) {
	if h == "" {
		return
	}
	if len(h) > maxHostname {
		c.add("hostname", CodeTooLong, "is %d bytes; the limit is %d", len(h), maxHostname)
		return
	}
	for _, label := range strings.Split(h, ".") {
		if !hostLabelRE.MatchString(label) {
			c.add("hostname", CodeInvalid, "%q must be dot-separated labels of 1-63 letters, digits and '-', not starting or ending with '-' (RFC 1123)", clip(h))
			return
		}
	}
}

func (c *checker) timezone(tz string) {
	switch {
	case tz == "":
		return
	case len(tz) > maxTimezone:
		c.add("timezone", CodeTooLong, "is %d bytes; the limit is %d", len(tz), maxTimezone)
		return
	case !timezoneRE.MatchString(tz) || tz == "Local":
		c.add("timezone", CodeInvalid, "%q must be an IANA zone name such as UTC or Europe/Berlin", clip(tz))
		return
	}
	// The image gets its zones from the tzdata package, the same source as the host's
	// /usr/share/zoneinfo; when the host has none, the grammar is all that can be checked.
	if st, err := os.Stat(c.zoneDir); err != nil || !st.IsDir() {
		return
	}
	data, err := os.ReadFile(filepath.Join(c.zoneDir, filepath.FromSlash(tz)))
	if err == nil {
		_, err = time.LoadLocationFromTZData(tz, data)
	}
	if err != nil {
		c.add("timezone", CodeInvalid, "%q is not a known time zone (see /usr/share/zoneinfo)", tz)
	}
}

func (c *checker) services(s *Services) {
	enabled := map[string]int{}
	check := func(list string, units []string, each func(i int, unit string)) {
		p := "services." + list
		if len(units) > maxServices {
			c.add(p, CodeTooMany, "has %d entries; the limit is %d", len(units), maxServices)
			return
		}
		for i, u := range units {
			if full, ok := c.unit(index(p, i), u); ok {
				each(i, full)
			}
		}
	}
	check("enable", s.Enable, func(i int, unit string) {
		if _, ok := enabled[unit]; !ok {
			enabled[unit] = i
		}
	})
	check("disable", s.Disable, func(i int, unit string) {
		if j, ok := enabled[unit]; ok {
			c.add(index("services.disable", i), CodeConflict, "%s is also in services.enable[%d]; a unit is either enabled or disabled", unit, j)
		}
	})
}

// unit checks a unit name and returns its full form (a bare name gets ".service").
func (c *checker) unit(p, u string) (string, bool) {
	if len(u) > maxUnitName {
		c.add(p, CodeTooLong, "is %d bytes; the limit is %d", len(u), maxUnitName)
		return "", false
	}
	allowed := []string{".service", ".socket", ".timer", ".target", ".path", ".mount"}
	if ext := path.Ext(u); ext != "" && slices.Contains(unitTypes(), ext[1:]) && !slices.Contains(allowed, ext) {
		c.add(p, CodeUnsupported, "%q: %s units cannot be enabled or disabled by a recipe; use .service, .socket, .timer, .target, .path or .mount", clip(u), ext)
		return "", false
	}
	full := NormalizeUnit(u)
	if !unitRE.MatchString(full) || !unitEscapeRE.MatchString(full) || len(full) > maxUnitName {
		c.add(p, CodeInvalid, "%q is not a systemd unit name (letters, digits and : _ . \\ @ -, ending in .service, .socket, .timer, .target, .path or .mount)", clip(u))
		return "", false
	}
	return full, true
}

// NormalizeUnit returns the full name of a systemd unit: a name without a unit type
// suffix means a service ("ssh" is "ssh.service").
func NormalizeUnit(u string) string {
	if ext := path.Ext(u); ext != "" && slices.Contains(unitTypes(), ext[1:]) {
		return u
	}
	return u + ".service"
}

func (c *checker) cmdline(tokens []string) {
	if len(tokens) > maxCmdline {
		c.add("kernel.cmdline", CodeTooMany, "has %d entries; the limit is %d", len(tokens), maxCmdline)
		return
	}
	total := 0
	for i, t := range tokens {
		p := index("kernel.cmdline", i)
		total += len(t) + 1
		key, _, _ := strings.Cut(t, "=")
		switch {
		case len(t) > maxCmdlineToken:
			c.add(p, CodeTooLong, "is %d bytes; the limit is %d", len(t), maxCmdlineToken)
		case !cmdlineRE.MatchString(t):
			c.add(p, CodeInvalid, "%q must be one kernel parameter of letters, digits and _ . , : = / + - (no spaces or quotes)", clip(t))
		case strings.HasPrefix(t, "-"):
			c.add(p, CodeInvalid, "%q starts with '-': the kernel would pass it and everything after it to init instead of reading it", clip(t))
		case key == "boot":
			c.add(p, CodeInvalid, "boot= is set by the image itself (boot=live); changing it stops the live system from starting")
		case key == "root":
			c.add(p, CodeInvalid, "root= must not be set: the live system finds its root filesystem on the ISO itself")
		case key == "init" || key == "rdinit":
			c.add(p, CodeInvalid, "%s= would replace the live system's start-up and systemd; the image would not boot as built", key)
		}
	}
	if total > maxCmdlineBytes {
		c.add("kernel.cmdline", CodeTooLong, "adds %d bytes to the kernel command line; the limit is %d", total, maxCmdlineBytes)
	}
}

func (c *checker) boot(modes []string) {
	for i, m := range modes {
		if m != "bios" && m != "uefi" {
			c.add(index("boot", i), CodeInvalid, "%q is not a boot mode; use bios, uefi or both", clip(m))
		}
	}
}

func (c *checker) image(im *Image) {
	if im.Compression != "" && !slices.Contains(Compressions(), im.Compression) {
		c.add("image.compression", CodeInvalid, "%q is not supported; use %s", clip(im.Compression), strings.Join(Compressions(), ", "))
		return
	}
	alg := orDefault(im.Compression, DefaultCompression)
	lo, hi, _ := compressionLevels(alg)
	switch {
	case im.CompressionLevel == 0:
	case hi == 0:
		c.add("image.compressionLevel", CodeInvalid, "%s takes no level; leave compressionLevel out (or 0)", alg)
	case im.CompressionLevel < lo || im.CompressionLevel > hi:
		c.add("image.compressionLevel", CodeInvalid, "%d is out of range for %s: use %d-%d (or 0 for the default)", im.CompressionLevel, alg, lo, hi)
	}
}

func (c *checker) scripts(scripts []Script) {
	if len(scripts) > maxScripts {
		c.add("scripts", CodeTooMany, "has %d entries; the limit is %d", len(scripts), maxScripts)
		return
	}
	seen := map[string]int{}
	for i, s := range scripts {
		p := index("scripts", i)
		np := field(p, "name")
		switch {
		case s.Name == "":
			c.add(np, CodeRequired, "is required")
		case !nameRE.MatchString(s.Name):
			c.add(np, CodeInvalid, "%q must be 1-63 lowercase letters, digits and '-'", clip(s.Name))
		default:
			if j, dup := seen[s.Name]; dup {
				c.add(np, CodeDuplicate, "%q is already scripts[%d].name", s.Name, j)
			}
			seen[s.Name] = i
		}
		rp := field(p, "run")
		switch {
		case strings.TrimSpace(s.Run) == "":
			c.add(rp, CodeRequired, "is required: the shell script to run")
		case len(s.Run) > maxScriptBytes:
			c.add(rp, CodeTooLong, "is %d bytes; the limit is %d (64 KiB)", len(s.Run), maxScriptBytes)
		case strings.ContainsRune(s.Run, 0):
			c.add(rp, CodeInvalid, "must not contain NUL bytes")
		case !utf8.ValidString(s.Run):
			c.add(rp, CodeInvalid, "must be valid UTF-8 text")
		}
	}
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// clip shortens a value quoted back in a message, so that a 1 MiB field does not make a
// 1 MiB error.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
