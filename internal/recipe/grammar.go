package recipe

import "regexp"

// The grammars below are the gate between user input and the command lines of the builder:
// every string that reaches mmdebstrap, systemctl, useradd or a boot loader configuration
// has passed one of them first. They are compiled once and never modified.
var (
	// nameRE is for recipe names (which become the ISO file name), layer ids and script
	// names.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	// packageRE is the Debian package name grammar (Debian Policy 5.6.7).
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// accountRE is the Debian user and group name grammar (adduser's default NAME_REGEX,
	// with the leading underscore system accounts such as _apt use).
	accountRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	modeRE    = regexp.MustCompile(`^0?[0-7]{3,4}$`)
	// snapshotRE is the timestamp form of snapshot.debian.org URLs.
	snapshotRE = regexp.MustCompile(`^\d{8}T\d{6}Z$`)
	// filePathRE keeps file paths to characters that need no quoting anywhere.
	filePathRE = regexp.MustCompile(`^[A-Za-z0-9/._+@,:=~-]+$`)
	// hostLabelRE is one RFC 1123 label.
	hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	localeRE    = regexp.MustCompile(`^[a-z]{2,3}(_[A-Z]{2})?(@[a-z]+)?\.UTF-8$|^C\.UTF-8$`)
	timezoneRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`)
	layoutRE    = regexp.MustCompile(`^[a-z]{2,8}$`)
	variantRE   = regexp.MustCompile(`^[a-z0-9_-]{0,32}$`)
	// unitRE is a systemd unit name of a type a recipe may enable or disable. Backslashes
	// only appear in systemd's \xNN escapes (checked separately).
	unitRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9:_.\\@-]*\.(service|socket|timer|target|path|mount)$`)
	// unitEscapeRE is a name whose every backslash starts a \xNN escape.
	unitEscapeRE = regexp.MustCompile(`^([^\\]|\\x[0-9a-f]{2})*$`)
	cmdlineRE    = regexp.MustCompile(`^[A-Za-z0-9_.,:=/+-]+$`)
	// passwordHashRE is the crypt(3) alphabet plus the '$' separators and the '=' and ','
	// of parameters such as rounds=.
	passwordHashRE = regexp.MustCompile(`^[A-Za-z0-9./$=,]+$`)
	base64RE       = regexp.MustCompile(`^[A-Za-z0-9+/]+={0,2}$`)
)

// Limits. Each is generous for a real system and small enough that a recipe stays cheap to
// store, hash and check.
const (
	maxDescription   = 1000 // characters
	maxPackages      = 1000
	maxPackageName   = 128
	maxLayers        = 50
	maxFiles         = 1000
	maxFilePath      = 4096 // bytes, PATH_MAX
	maxPathComponent = 255  // bytes, NAME_MAX
	maxFileBytes     = 256 << 10
	maxAllFilesBytes = 1 << 20
	maxUsers         = 100
	maxGroups        = 64
	maxSSHKeys       = 64
	maxSSHKeyLine    = 16 << 10
	maxPasswordHash  = 512
	maxHostname      = 253
	maxTimezone      = 128
	maxServices      = 200
	maxUnitName      = 256 // systemd's UNIT_NAME_MAX
	maxCmdline       = 64  // tokens
	maxCmdlineToken  = 256
	maxCmdlineBytes  = 1024 // of 2048 on x86; the rest is the builder's own arguments
	maxMirrorURL     = 1024
	maxScripts       = 50
	maxScriptBytes   = 64 << 10
)

// Defaults filled in by Normalize.
const (
	DefaultArchitecture = "amd64"
	DefaultComponent    = "main"
	DefaultFileMode     = "0644"
	DefaultFileOwner    = "root:root"
	DefaultShell        = "/bin/bash"
	DefaultHostname     = "debate"
	DefaultLocale       = "C.UTF-8"
	DefaultTimezone     = "UTC"
	DefaultLayout       = "us"
	DefaultCompression  = "zstd"
)

// SupportedDistributions lists the distributions base.distribution accepts.
func SupportedDistributions() []string { return []string{"debian"} }

// SupportedReleases lists the releases base.release accepts for a distribution. Adding a
// release (trixie) is adding it here, once the builder can build it.
func SupportedReleases(distribution string) []string {
	switch distribution {
	case "debian":
		return []string{"bookworm"}
	}
	return nil
}

// SupportedArchitectures lists the architectures base.architecture accepts.
func SupportedArchitectures(distribution string) []string {
	switch distribution {
	case "debian":
		return []string{"amd64"}
	}
	return nil
}

// supportedComponents are the archive areas of Debian (non-free-firmware since bookworm).
func supportedComponents() []string {
	return []string{"contrib", "main", "non-free", "non-free-firmware"}
}

// Shells lists the login shells a user may have. zsh and fish must also be installed (in
// packages or through a layer).
func Shells() []string {
	return []string{"/bin/bash", "/bin/dash", "/bin/sh", "/usr/bin/fish", "/usr/bin/zsh", "/usr/sbin/nologin"}
}

// sshKeyTypes are the authorized_keys key types accepted.
func sshKeyTypes() []string {
	return []string{
		"ssh-ed25519", "ssh-rsa",
		"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
		"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
	}
}

// passwordHashPrefixes are the crypt(3) methods accepted: yescrypt, gost-yescrypt, scrypt,
// SHA-512 and SHA-256 crypt. MD5 ($1$) and DES are refused as too weak.
func passwordHashPrefixes() []string {
	return []string{"$y$", "$gy$", "$7$", "$6$", "$5$"}
}

// Compressions lists image.compression values.
func Compressions() []string { return []string{"gzip", "lz4", "xz", "zstd"} }

// compressionLevels gives the level range of an algorithm and its default; max 0 means the
// algorithm takes no level (mksquashfs has no level option for xz or lz4).
func compressionLevels(algorithm string) (lo, hi, def int) {
	switch algorithm {
	case "zstd":
		return 1, 22, 15
	case "gzip":
		return 1, 9, 9
	}
	return 0, 0, 0
}

// reservedAccounts are user and group names the base system (base-passwd, systemd and
// common packages) already uses: a recipe user of that name would clash with them.
func reservedAccounts() []string {
	return []string{
		"_apt", "_chrony", "_rpc", "adm", "audio", "avahi", "backup", "bin", "cdrom", "colord",
		"crontab", "daemon", "dialout", "dip", "disk", "dnsmasq", "fax", "floppy", "games",
		"geoclue", "gnats", "input", "irc", "kmem", "kvm", "lightdm", "list", "lp", "mail",
		"man", "messagebus", "netdev", "news", "nogroup", "nobody", "ntp", "ntpsec",
		"operator", "plugdev", "polkitd", "proxy", "pulse", "render", "rtkit", "sasl",
		"saned", "sddm", "sgx", "shadow", "src", "sshd", "staff", "statd", "sudo", "sync",
		"sys", "systemd-coredump", "systemd-journal", "systemd-network", "systemd-resolve",
		"systemd-timesync", "tape", "tcpdump", "tss", "tty", "usbmux", "users", "utmp",
		"uucp", "uuidd", "video", "voice", "www-data",
	}
}

// unitTypes are all systemd unit types; those not in unitRE are refused rather than
// mistaken for a bare service name.
func unitTypes() []string {
	return []string{"automount", "device", "mount", "path", "scope", "service", "slice", "socket", "swap", "target", "timer"}
}

// settingFiles maps files the builder writes from a recipe setting to that setting: a
// file entry there would be silently overwritten (or would silently win), so it is refused.
func settingFiles() map[string]string {
	return map[string]string{
		"/etc/hostname":         "hostname",
		"/etc/timezone":         "timezone",
		"/etc/localtime":        "timezone",
		"/etc/default/locale":   "locale",
		"/etc/default/keyboard": "keyboard",
		"/etc/passwd":           "users",
		"/etc/shadow":           "users",
		"/etc/group":            "users",
		"/etc/gshadow":          "users",
	}
}

// forbiddenRoots are trees no file may be placed under: they are kernel or runtime
// filesystems mounted over the image at boot, so a file there would never be seen.
func forbiddenRoots() []string { return []string{"/dev", "/proc", "/run", "/sys"} }
