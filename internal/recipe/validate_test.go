package recipe

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

type want struct{ path, code string }

func TestValidateRules(t *testing.T) {
	if _, err := os.Stat("/usr/share/zoneinfo/Europe/Berlin"); err != nil {
		t.Fatalf("these tests check zones against the host's zone database: install tzdata (%v)", err)
	}
	file := func(p string) File { return File{Path: p, Content: strp("x\n")} }
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	alice := func() User { return User{Name: "alice"} }

	cases := []struct {
		name   string
		mutate func(r *Recipe)
		want   []want // empty: valid
	}{
		{"minimal", func(r *Recipe) {}, nil},

		// apiVersion, name, description
		{"apiVersion missing", func(r *Recipe) { r.APIVersion = "" }, []want{{"apiVersion", CodeRequired}}},
		{"apiVersion other", func(r *Recipe) { r.APIVersion = "debate/v2" }, []want{{"apiVersion", CodeUnsupported}}},
		{"name missing", func(r *Recipe) { r.Name = "" }, []want{{"name", CodeRequired}}},
		{"name one char", func(r *Recipe) { r.Name = "a" }, nil},
		{"name 63 chars", func(r *Recipe) { r.Name = strings.Repeat("a", 63) }, nil},
		{"name 64 chars", func(r *Recipe) { r.Name = strings.Repeat("a", 64) }, []want{{"name", CodeInvalid}}},
		{"name uppercase", func(r *Recipe) { r.Name = "Minimal" }, []want{{"name", CodeInvalid}}},
		{"name leading dash", func(r *Recipe) { r.Name = "-x" }, []want{{"name", CodeInvalid}}},
		{"name with slash", func(r *Recipe) { r.Name = "a/../b" }, []want{{"name", CodeInvalid}}},
		{"name with underscore", func(r *Recipe) { r.Name = "my_iso" }, []want{{"name", CodeInvalid}}},
		{"description multi-line with tab", func(r *Recipe) { r.Description = "Débat\n\tline two" }, nil},
		{"description 1000 chars", func(r *Recipe) { r.Description = strings.Repeat("é", 1000) }, nil},
		{"description 1001 chars", func(r *Recipe) { r.Description = strings.Repeat("a", 1001) }, []want{{"description", CodeTooLong}}},
		{"description control char", func(r *Recipe) { r.Description = "bell\a" }, []want{{"description", CodeInvalid}}},
		{"description carriage return", func(r *Recipe) { r.Description = "a\r\nb" }, []want{{"description", CodeInvalid}}},
		{"description invalid utf8", func(r *Recipe) { r.Description = "a\xffb" }, []want{{"description", CodeInvalid}}},

		// base
		{"distribution missing", func(r *Recipe) { r.Base.Distribution = "" }, []want{{"base.distribution", CodeRequired}}},
		{"distribution arch", func(r *Recipe) { r.Base.Distribution = "arch" }, []want{{"base.distribution", CodeUnsupported}}},
		{"release missing", func(r *Recipe) { r.Base.Release = "" }, []want{{"base.release", CodeRequired}}},
		{"release trixie not yet", func(r *Recipe) { r.Base.Release = "trixie" }, []want{{"base.release", CodeUnsupported}}},
		{"release sid", func(r *Recipe) { r.Base.Release = "sid" }, []want{{"base.release", CodeUnsupported}}},
		{"architecture amd64", func(r *Recipe) { r.Base.Architecture = "amd64" }, nil},
		{"architecture arm64", func(r *Recipe) { r.Base.Architecture = "arm64" }, []want{{"base.architecture", CodeUnsupported}}},
		{"mirror https", func(r *Recipe) { r.Base.Mirror = "https://deb.debian.org/debian/" }, nil},
		{"mirror with port and ipv6", func(r *Recipe) { r.Base.Mirror = "http://[::1]:3142/debian" }, nil},
		{"mirror ftp", func(r *Recipe) { r.Base.Mirror = "ftp://ftp.debian.org/debian" }, []want{{"base.mirror", CodeInvalid}}},
		{"mirror relative", func(r *Recipe) { r.Base.Mirror = "deb.debian.org/debian" }, []want{{"base.mirror", CodeInvalid}}},
		{"mirror no host", func(r *Recipe) { r.Base.Mirror = "http:///debian" }, []want{{"base.mirror", CodeInvalid}}},
		{"mirror userinfo", func(r *Recipe) { r.Base.Mirror = "http://user:pw@deb.debian.org/debian" }, []want{{"base.mirror", CodeInvalid}}},
		{"mirror query", func(r *Recipe) { r.Base.Mirror = "http://deb.debian.org/debian?x=1" }, []want{{"base.mirror", CodeInvalid}}},
		{"mirror fragment", func(r *Recipe) { r.Base.Mirror = "http://deb.debian.org/debian#x" }, []want{{"base.mirror", CodeInvalid}}},
		{"mirror whitespace", func(r *Recipe) { r.Base.Mirror = "http://deb.debian.org/deb ian" }, []want{{"base.mirror", CodeInvalid}}},
		{"mirror shell", func(r *Recipe) { r.Base.Mirror = "http://x/$(reboot)" }, []want{{"base.mirror", CodeInvalid}}},
		{"mirror too long", func(r *Recipe) { r.Base.Mirror = "http://x/" + strings.Repeat("a", 1100) }, []want{{"base.mirror", CodeTooLong}}},
		{"security mirror", func(r *Recipe) { r.Base.SecurityMirror = "http://security.debian.org/debian-security" }, nil},
		{"security mirror bad", func(r *Recipe) { r.Base.SecurityMirror = "file:///srv/mirror" }, []want{{"base.securityMirror", CodeInvalid}}},
		{"snapshot", func(r *Recipe) { r.Base.Snapshot = "20250520T000000Z" }, nil},
		{"snapshot dashed", func(r *Recipe) { r.Base.Snapshot = "2025-05-20" }, []want{{"base.snapshot", CodeInvalid}}},
		{"snapshot month 13", func(r *Recipe) { r.Base.Snapshot = "20251320T000000Z" }, []want{{"base.snapshot", CodeInvalid}}},
		{"snapshot feb 30", func(r *Recipe) { r.Base.Snapshot = "20250230T000000Z" }, []want{{"base.snapshot", CodeInvalid}}},
		{"snapshot hour 24", func(r *Recipe) { r.Base.Snapshot = "20250101T240000Z" }, []want{{"base.snapshot", CodeInvalid}}},
		{"snapshot future", func(r *Recipe) { r.Base.Snapshot = "20990101T000000Z" }, []want{{"base.snapshot", CodeInvalid}}},
		{"components", func(r *Recipe) {
			r.Base.Components = []string{"non-free", "main", "contrib", "main", "non-free-firmware"}
		}, nil},
		{"components unknown", func(r *Recipe) { r.Base.Components = []string{"main", "universe"} }, []want{{"base.components[1]", CodeInvalid}}},
		{"components without main", func(r *Recipe) { r.Base.Components = []string{"contrib"} }, []want{{"base.components", CodeInvalid}}},
		{"updates off", func(r *Recipe) { f := false; r.Base.Updates = &f }, nil},

		// packages
		{"packages", func(r *Recipe) {
			r.Packages = []string{"openssh-server", "g++", "libstdc++6", "linux-image-6.1.0-9-amd64", "0ad"}
		}, nil},
		{"package uppercase", func(r *Recipe) { r.Packages = []string{"vim", "Vim"} }, []want{{"packages[1]", CodeInvalid}}},
		{"package one char", func(r *Recipe) { r.Packages = []string{"a"} }, []want{{"packages[0]", CodeInvalid}}},
		{"package with version", func(r *Recipe) { r.Packages = []string{"vim=2:9.0"} }, []want{{"packages[0]", CodeInvalid}}},
		{"package with arch", func(r *Recipe) { r.Packages = []string{"vim:amd64"} }, []want{{"packages[0]", CodeInvalid}}},
		{"package option", func(r *Recipe) { r.Packages = []string{"--allow-unauthenticated"} }, []want{{"packages[0]", CodeInvalid}}},
		{"package space", func(r *Recipe) { r.Packages = []string{"vim tiny"} }, []want{{"packages[0]", CodeInvalid}}},
		{"package too long", func(r *Recipe) { r.Packages = []string{strings.Repeat("a", 129)} }, []want{{"packages[0]", CodeTooLong}}},
		{"1000 packages", func(r *Recipe) { r.Packages = many(1000, func(i int) string { return fmt.Sprintf("pkg%d", i) }) }, nil},
		{"1001 packages", func(r *Recipe) { r.Packages = many(1001, func(i int) string { return fmt.Sprintf("pkg%d", i) }) }, []want{{"packages", CodeTooMany}}},

		// layers
		{"layers", func(r *Recipe) { r.Layers = []string{"ssh-server", "desktop"} }, nil},
		{"layer bad id", func(r *Recipe) { r.Layers = []string{"SSH"} }, []want{{"layers[0]", CodeInvalid}}},
		{"layer duplicate", func(r *Recipe) { r.Layers = []string{"a", "b", "a"} }, []want{{"layers[2]", CodeDuplicate}}},
		{"50 layers", func(r *Recipe) { r.Layers = many(50, func(i int) string { return fmt.Sprintf("l%d", i) }) }, nil},
		{"51 layers", func(r *Recipe) { r.Layers = many(51, func(i int) string { return fmt.Sprintf("l%d", i) }) }, []want{{"layers", CodeTooMany}}},

		// files
		{"file", func(r *Recipe) {
			r.Files = []File{{Path: "/etc/motd", Content: strp(""), Mode: "0600", Owner: "root:adm"}, file("/tmp/x"), file("/usr/local/bin/a-b_c.d+e@f,g:h=i~j")}
		}, nil},
		{"file path missing", func(r *Recipe) { r.Files = []File{file("")} }, []want{{"files[0].path", CodeRequired}}},
		{"file path relative", func(r *Recipe) { r.Files = []File{file("etc/motd")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file path dotdot", func(r *Recipe) { r.Files = []File{file("/etc/../root/x")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file path unclean", func(r *Recipe) { r.Files = []File{file("/etc//motd")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file path dot", func(r *Recipe) { r.Files = []File{file("/etc/./motd")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file path trailing slash", func(r *Recipe) { r.Files = []File{file("/etc/motd/")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file path root", func(r *Recipe) { r.Files = []File{file("/")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file path newline", func(r *Recipe) { r.Files = []File{file("/etc/mo\ntd")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file path NUL", func(r *Recipe) { r.Files = []File{file("/etc/mo\x00td")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file path space", func(r *Recipe) { r.Files = []File{file("/etc/a b")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file path quote", func(r *Recipe) { r.Files = []File{file("/etc/a'b")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file under proc", func(r *Recipe) { r.Files = []File{file("/proc/sys/kernel/x")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file sys itself", func(r *Recipe) { r.Files = []File{file("/sys")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file under dev", func(r *Recipe) { r.Files = []File{file("/dev/null")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file under run", func(r *Recipe) { r.Files = []File{file("/run/x")} }, []want{{"files[0].path", CodeInvalid}}},
		{"file devices lookalike", func(r *Recipe) { r.Files = []File{file("/devices/x")} }, nil},
		{"file name 256 bytes", func(r *Recipe) { r.Files = []File{file("/etc/" + strings.Repeat("a", 256))} }, []want{{"files[0].path", CodeTooLong}}},
		{"file path 4097 bytes", func(r *Recipe) { r.Files = []File{file(strings.Repeat("/aaaaaaa", 512) + "/b")} }, []want{{"files[0].path", CodeTooLong}}},
		{"file both contents", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp("x"), ContentBase64: strp("eA==")}} }, []want{{"files[0]", CodeConflict}}},
		{"file no content", func(r *Recipe) { r.Files = []File{{Path: "/a"}} }, []want{{"files[0].content", CodeRequired}}},
		{"file base64", func(r *Recipe) { r.Files = []File{{Path: "/a", ContentBase64: strp("AAEC\nAwT/\n")}} }, nil},
		{"file base64 bad", func(r *Recipe) { r.Files = []File{{Path: "/a", ContentBase64: strp("not base64!")}} }, []want{{"files[0].contentBase64", CodeInvalid}}},
		{"file base64 unpadded", func(r *Recipe) { r.Files = []File{{Path: "/a", ContentBase64: strp("eA")}} }, []want{{"files[0].contentBase64", CodeInvalid}}},
		{"modes", func(r *Recipe) {
			r.Files = []File{{Path: "/a", Content: strp(""), Mode: "644"}, {Path: "/b", Content: strp(""), Mode: "0755"}, {Path: "/c", Content: strp(""), Mode: "0000"}, {Path: "/d", Content: strp(""), Mode: "0777"}}
		}, nil},
		{"mode 0o prefix", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Mode: "0o644"}} }, []want{{"files[0].mode", CodeInvalid}}},
		{"mode symbolic", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Mode: "rw-r--r--"}} }, []want{{"files[0].mode", CodeInvalid}}},
		{"mode not octal", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Mode: "0888"}} }, []want{{"files[0].mode", CodeInvalid}}},
		{"mode setuid", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Mode: "4755"}} }, []want{{"files[0].mode", CodeInvalid}}},
		{"mode setgid", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Mode: "02755"}} }, []want{{"files[0].mode", CodeInvalid}}},
		{"mode sticky", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Mode: "1777"}} }, []want{{"files[0].mode", CodeInvalid}}},
		{"owner user only", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Owner: "root"}} }, []want{{"files[0].owner", CodeInvalid}}},
		{"owner numeric", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Owner: "0:0"}} }, []want{{"files[0].owner", CodeInvalid}}},
		{"owner uppercase", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Owner: "Root:root"}} }, []want{{"files[0].owner", CodeInvalid}}},
		{"owner three parts", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(""), Owner: "a:b:c"}} }, []want{{"files[0].owner", CodeInvalid}}},
		{"duplicate file path", func(r *Recipe) { r.Files = []File{file("/a"), file("/b"), file("/a")} }, []want{{"files[2].path", CodeDuplicate}}},
		{"file 256 KiB", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(strings.Repeat("x", 256<<10))}} }, nil},
		{"file over 256 KiB", func(r *Recipe) { r.Files = []File{{Path: "/a", Content: strp(strings.Repeat("x", 256<<10+1))}} }, []want{{"files[0].content", CodeTooLong}}},
		{"base64 file over 256 KiB", func(r *Recipe) {
			r.Files = []File{{Path: "/a", ContentBase64: strp(base64.StdEncoding.EncodeToString(make([]byte, 256<<10+1)))}}
		}, []want{{"files[0].contentBase64", CodeTooLong}}},
		{"files over 1 MiB in total", func(r *Recipe) {
			for i := range 5 {
				r.Files = append(r.Files, File{Path: fmt.Sprintf("/f%d", i), Content: strp(strings.Repeat("x", 250<<10))})
			}
		}, []want{{"files", CodeTooLong}}},
		{"1001 files", func(r *Recipe) {
			for i := range 1001 {
				r.Files = append(r.Files, file(fmt.Sprintf("/f%d", i)))
			}
		}, []want{{"files", CodeTooMany}}},
		{"file /etc/hostname", func(r *Recipe) { r.Files = []File{file("/etc/hostname")} }, []want{{"files[0].path", CodeConflict}}},
		{"file /etc/shadow", func(r *Recipe) { r.Files = []File{file("/etc/shadow")} }, []want{{"files[0].path", CodeConflict}}},
		{"file authorized_keys of user with keys", func(r *Recipe) {
			r.Users = []User{{Name: "alice", SSHKeys: []string{testEd25519}}}
			r.Files = []File{file("/home/alice/.ssh/authorized_keys")}
		}, []want{{"files[0].path", CodeConflict}}},
		{"file authorized_keys of user without keys", func(r *Recipe) {
			r.Users = []User{alice()}
			r.Files = []File{file("/home/alice/.ssh/authorized_keys")}
		}, nil},

		// users
		{"users", func(r *Recipe) {
			r.Users = []User{
				{Name: "alice", PasswordHash: testSHA512, Groups: []string{"adm", "sudo", "adm"}, Sudo: true, SSHKeys: []string{testEd25519, testECDSA}, Shell: "/usr/bin/zsh"},
				{Name: "_svc", Shell: "/usr/sbin/nologin"},
				{Name: "root", PasswordHash: "$y$j9T$Xq0Yy/Ts3ULcTDvc6t7Sv/$jMjkn4UjTKB7vMPR.jB2A2R2tdnxQRxOJGp1Ll5ZCL1", SSHKeys: []string{testECDSA}, Shell: "/bin/bash"},
			}
		}, nil},
		{"user name missing", func(r *Recipe) { r.Users = []User{{}} }, []want{{"users[0].name", CodeRequired}}},
		{"user name uppercase", func(r *Recipe) { r.Users = []User{{Name: "Alice"}} }, []want{{"users[0].name", CodeInvalid}}},
		{"user name digit first", func(r *Recipe) { r.Users = []User{{Name: "1alice"}} }, []want{{"users[0].name", CodeInvalid}}},
		{"user name 33 chars", func(r *Recipe) { r.Users = []User{{Name: strings.Repeat("a", 33)}} }, []want{{"users[0].name", CodeInvalid}}},
		{"user name reserved", func(r *Recipe) { r.Users = []User{{Name: "daemon"}} }, []want{{"users[0].name", CodeInvalid}}},
		{"user name is a system group", func(r *Recipe) { r.Users = []User{{Name: "sudo"}} }, []want{{"users[0].name", CodeInvalid}}},
		{"user duplicate", func(r *Recipe) { r.Users = []User{alice(), {Name: "bob"}, alice()} }, []want{{"users[2].name", CodeDuplicate}}},
		{"101 users", func(r *Recipe) {
			for i := range 101 {
				r.Users = append(r.Users, User{Name: fmt.Sprintf("u%d", i)})
			}
		}, []want{{"users", CodeTooMany}}},
		{"password sha-256", func(r *Recipe) {
			r.Users = []User{{Name: "a", PasswordHash: "$5$s$dW5XYXYClLA6gQlrluhRP/DxJYAevXA9e.Rufup9G5."}}
		}, nil},
		{"password sha-512 rounds", func(r *Recipe) { r.Users = []User{{Name: "a", PasswordHash: "$6$rounds=10000$salt$abc"}} }, nil},
		{"password md5", func(r *Recipe) { r.Users = []User{{Name: "a", PasswordHash: "$1$salt$hash"}} }, []want{{"users[0].passwordHash", CodeInvalid}}},
		{"password plain", func(r *Recipe) { r.Users = []User{{Name: "a", PasswordHash: "hunter2"}} }, []want{{"users[0].passwordHash", CodeInvalid}}},
		{"password colon", func(r *Recipe) { r.Users = []User{{Name: "a", PasswordHash: "$6$salt$ha:sh"}} }, []want{{"users[0].passwordHash", CodeInvalid}}},
		{"password space", func(r *Recipe) { r.Users = []User{{Name: "a", PasswordHash: "$6$salt$ha sh"}} }, []want{{"users[0].passwordHash", CodeInvalid}}},
		{"password newline", func(r *Recipe) { r.Users = []User{{Name: "a", PasswordHash: "$6$salt$hash\nroot::0:0"}} }, []want{{"users[0].passwordHash", CodeInvalid}}},
		{"password incomplete", func(r *Recipe) { r.Users = []User{{Name: "a", PasswordHash: "$6$salt$"}} }, []want{{"users[0].passwordHash", CodeInvalid}}},
		{"password method only", func(r *Recipe) { r.Users = []User{{Name: "a", PasswordHash: "$y$"}} }, []want{{"users[0].passwordHash", CodeInvalid}}},
		{"password odd chars", func(r *Recipe) { r.Users = []User{{Name: "a", PasswordHash: "$6$salt$h&sh"}} }, []want{{"users[0].passwordHash", CodeInvalid}}},
		{"group bad", func(r *Recipe) { r.Users = []User{{Name: "a", Groups: []string{"adm", "Wheel"}}} }, []want{{"users[0].groups[1]", CodeInvalid}}},
		{"ssh key dss", func(r *Recipe) { r.Users = []User{{Name: "a", SSHKeys: []string{"ssh-dss AAAAB3NzaC1kc3MAAACB"}}} }, []want{{"users[0].sshKeys[0]", CodeInvalid}}},
		{"ssh key options", func(r *Recipe) { r.Users = []User{{Name: "a", SSHKeys: []string{`from="10.0.0.1" ` + testEd25519}}} }, []want{{"users[0].sshKeys[0]", CodeInvalid}}},
		{"ssh key not base64", func(r *Recipe) { r.Users = []User{{Name: "a", SSHKeys: []string{"ssh-ed25519 not-base64!!"}}} }, []want{{"users[0].sshKeys[0]", CodeInvalid}}},
		{"ssh key type mismatch", func(r *Recipe) {
			r.Users = []User{{Name: "a", SSHKeys: []string{testEd25519, "ssh-rsa" + strings.TrimPrefix(testEd25519, "ssh-ed25519")}}}
		}, []want{{"users[0].sshKeys[1]", CodeInvalid}}},
		{"ssh key truncated", func(r *Recipe) { r.Users = []User{{Name: "a", SSHKeys: []string{"ssh-ed25519 AAAAC3Nz"}}} }, []want{{"users[0].sshKeys[0]", CodeInvalid}}},
		{"ssh key two lines", func(r *Recipe) { r.Users = []User{{Name: "a", SSHKeys: []string{testEd25519 + "\n" + testECDSA}}} }, []want{{"users[0].sshKeys[0]", CodeInvalid}}},
		{"ssh key type alone", func(r *Recipe) { r.Users = []User{{Name: "a", SSHKeys: []string{"ssh-ed25519"}}} }, []want{{"users[0].sshKeys[0]", CodeInvalid}}},
		{"shell unknown", func(r *Recipe) { r.Users = []User{{Name: "a", Shell: "/bin/csh"}} }, []want{{"users[0].shell", CodeInvalid}}},
		{"shell relative", func(r *Recipe) { r.Users = []User{{Name: "a", Shell: "bash"}} }, []want{{"users[0].shell", CodeInvalid}}},
		{"root groups", func(r *Recipe) { r.Users = []User{{Name: "root", Groups: []string{"adm"}}} }, []want{{"users[0].groups", CodeInvalid}}},
		{"root sudo", func(r *Recipe) { r.Users = []User{{Name: "root", Sudo: true}} }, []want{{"users[0].sudo", CodeInvalid}}},
		{"root shell", func(r *Recipe) { r.Users = []User{{Name: "root", Shell: "/usr/bin/zsh"}} }, []want{{"users[0].shell", CodeInvalid}}},

		// hostname, locale, timezone, keyboard
		{"hostname fqdn", func(r *Recipe) { r.Hostname = "Host-1.example.org" }, nil},
		{"hostname leading dash", func(r *Recipe) { r.Hostname = "-host" }, []want{{"hostname", CodeInvalid}}},
		{"hostname trailing dash", func(r *Recipe) { r.Hostname = "host-" }, []want{{"hostname", CodeInvalid}}},
		{"hostname empty label", func(r *Recipe) { r.Hostname = "a..b" }, []want{{"hostname", CodeInvalid}}},
		{"hostname underscore", func(r *Recipe) { r.Hostname = "my_host" }, []want{{"hostname", CodeInvalid}}},
		{"hostname label 63", func(r *Recipe) { r.Hostname = strings.Repeat("a", 63) }, nil},
		{"hostname label 64", func(r *Recipe) { r.Hostname = strings.Repeat("a", 64) }, []want{{"hostname", CodeInvalid}}},
		{"hostname 254", func(r *Recipe) { r.Hostname = strings.Repeat(strings.Repeat("a", 62)+".", 4) + "ab" }, []want{{"hostname", CodeTooLong}}},
		{"locale", func(r *Recipe) { r.Locale = "en_US.UTF-8" }, nil},
		{"locale C", func(r *Recipe) { r.Locale = "C.UTF-8" }, nil},
		{"locale modifier", func(r *Recipe) { r.Locale = "ca_ES@valencia.UTF-8" }, nil},
		{"locale lowercase utf8", func(r *Recipe) { r.Locale = "en_US.utf8" }, []want{{"locale", CodeInvalid}}},
		{"locale no charset", func(r *Recipe) { r.Locale = "en_US" }, []want{{"locale", CodeInvalid}}},
		{"locale posix", func(r *Recipe) { r.Locale = "POSIX" }, []want{{"locale", CodeInvalid}}},
		{"timezone", func(r *Recipe) { r.Timezone = "America/Argentina/Buenos_Aires" }, nil},
		{"timezone etc", func(r *Recipe) { r.Timezone = "Etc/GMT+5" }, nil},
		{"timezone unknown", func(r *Recipe) { r.Timezone = "Mars/Olympus_Mons" }, []want{{"timezone", CodeInvalid}}},
		{"timezone directory", func(r *Recipe) { r.Timezone = "Europe" }, []want{{"timezone", CodeInvalid}}},
		{"timezone Local", func(r *Recipe) { r.Timezone = "Local" }, []want{{"timezone", CodeInvalid}}},
		{"timezone traversal", func(r *Recipe) { r.Timezone = "../../etc/passwd" }, []want{{"timezone", CodeInvalid}}},
		{"timezone absolute", func(r *Recipe) { r.Timezone = "/etc/localtime" }, []want{{"timezone", CodeInvalid}}},
		{"keyboard", func(r *Recipe) { r.Keyboard = Keyboard{Layout: "de", Variant: "nodeadkeys"} }, nil},
		{"keyboard layout uppercase", func(r *Recipe) { r.Keyboard.Layout = "DE" }, []want{{"keyboard.layout", CodeInvalid}}},
		{"keyboard layout one letter", func(r *Recipe) { r.Keyboard.Layout = "d" }, []want{{"keyboard.layout", CodeInvalid}}},
		{"keyboard variant space", func(r *Recipe) { r.Keyboard.Variant = "no dead keys" }, []want{{"keyboard.variant", CodeInvalid}}},

		// services
		{"services", func(r *Recipe) {
			r.Services.Enable = []string{"ssh", "getty@ttyS0.service", "systemd-networkd.socket", "fstrim.timer", "multi-user.target", `dev-disk-by\x2dlabel-data.mount`, "foo.path"}
			r.Services.Disable = []string{"apt-daily.timer", "bluetooth"}
		}, nil},
		{"service space", func(r *Recipe) { r.Services.Enable = []string{"ssh", "bad name"} }, []want{{"services.enable[1]", CodeInvalid}}},
		{"service option", func(r *Recipe) { r.Services.Disable = []string{"--now"} }, []want{{"services.disable[0]", CodeInvalid}}},
		{"service automount", func(r *Recipe) { r.Services.Enable = []string{"proc-sys-fs-binfmt_misc.automount"} }, []want{{"services.enable[0]", CodeUnsupported}}},
		{"service slice", func(r *Recipe) { r.Services.Disable = []string{"user.slice"} }, []want{{"services.disable[0]", CodeUnsupported}}},
		{"service bad escape", func(r *Recipe) { r.Services.Enable = []string{`a\b.service`} }, []want{{"services.enable[0]", CodeInvalid}}},
		{"service too long", func(r *Recipe) { r.Services.Enable = []string{strings.Repeat("a", 257)} }, []want{{"services.enable[0]", CodeTooLong}}},
		{"service enabled and disabled", func(r *Recipe) {
			r.Services.Enable = []string{"cron", "ssh"}
			r.Services.Disable = []string{"ssh.service"}
		}, []want{{"services.disable[0]", CodeConflict}}},
		{"201 services", func(r *Recipe) { r.Services.Enable = many(201, func(i int) string { return fmt.Sprintf("s%d", i) }) }, []want{{"services.enable", CodeTooMany}}},

		// kernel
		{"cmdline", func(r *Recipe) {
			r.Kernel.Cmdline = []string{"quiet", "loglevel=3", "console=ttyS0,115200n8", "systemd.unit=multi-user.target"}
		}, nil},
		{"cmdline boot", func(r *Recipe) { r.Kernel.Cmdline = []string{"boot=casper"} }, []want{{"kernel.cmdline[0]", CodeInvalid}}},
		{"cmdline root", func(r *Recipe) { r.Kernel.Cmdline = []string{"quiet", "root=/dev/sda1"} }, []want{{"kernel.cmdline[1]", CodeInvalid}}},
		{"cmdline init", func(r *Recipe) { r.Kernel.Cmdline = []string{"init=/bin/sh"} }, []want{{"kernel.cmdline[0]", CodeInvalid}}},
		{"cmdline rdinit", func(r *Recipe) { r.Kernel.Cmdline = []string{"rdinit=/bin/sh"} }, []want{{"kernel.cmdline[0]", CodeInvalid}}},
		{"cmdline double dash", func(r *Recipe) { r.Kernel.Cmdline = []string{"--"} }, []want{{"kernel.cmdline[0]", CodeInvalid}}},
		{"cmdline space", func(r *Recipe) { r.Kernel.Cmdline = []string{"a b"} }, []want{{"kernel.cmdline[0]", CodeInvalid}}},
		{"cmdline quote", func(r *Recipe) { r.Kernel.Cmdline = []string{`a="b"`} }, []want{{"kernel.cmdline[0]", CodeInvalid}}},
		{"cmdline 64", func(r *Recipe) { r.Kernel.Cmdline = many(64, func(i int) string { return fmt.Sprintf("p%d", i) }) }, nil},
		{"cmdline 65", func(r *Recipe) { r.Kernel.Cmdline = many(65, func(i int) string { return fmt.Sprintf("p%d", i) }) }, []want{{"kernel.cmdline", CodeTooMany}}},
		{"cmdline too many bytes", func(r *Recipe) { r.Kernel.Cmdline = many(5, func(i int) string { return strings.Repeat("x", 250) }) }, []want{{"kernel.cmdline", CodeTooLong}}},

		// boot, image
		{"boot bios", func(r *Recipe) { r.Boot = []string{"bios"} }, nil},
		{"boot both", func(r *Recipe) { r.Boot = []string{"uefi", "bios", "uefi"} }, nil},
		{"boot efi", func(r *Recipe) { r.Boot = []string{"bios", "efi"} }, []want{{"boot[1]", CodeInvalid}}},
		{"zstd 1", func(r *Recipe) { r.Image = Image{Compression: "zstd", CompressionLevel: 1} }, nil},
		{"zstd 22", func(r *Recipe) { r.Image = Image{CompressionLevel: 22} }, nil},
		{"zstd 23", func(r *Recipe) { r.Image = Image{Compression: "zstd", CompressionLevel: 23} }, []want{{"image.compressionLevel", CodeInvalid}}},
		{"zstd -1", func(r *Recipe) { r.Image = Image{Compression: "zstd", CompressionLevel: -1} }, []want{{"image.compressionLevel", CodeInvalid}}},
		{"gzip 9", func(r *Recipe) { r.Image = Image{Compression: "gzip", CompressionLevel: 9} }, nil},
		{"gzip 10", func(r *Recipe) { r.Image = Image{Compression: "gzip", CompressionLevel: 10} }, []want{{"image.compressionLevel", CodeInvalid}}},
		{"xz", func(r *Recipe) { r.Image = Image{Compression: "xz"} }, nil},
		{"xz 6", func(r *Recipe) { r.Image = Image{Compression: "xz", CompressionLevel: 6} }, []want{{"image.compressionLevel", CodeInvalid}}},
		{"lz4", func(r *Recipe) { r.Image = Image{Compression: "lz4"} }, nil},
		{"lz4 1", func(r *Recipe) { r.Image = Image{Compression: "lz4", CompressionLevel: 1} }, []want{{"image.compressionLevel", CodeInvalid}}},
		{"brotli", func(r *Recipe) { r.Image = Image{Compression: "brotli"} }, []want{{"image.compression", CodeInvalid}}},

		// scripts
		{"scripts", func(r *Recipe) {
			r.Scripts = []Script{{Name: "one", Run: "echo 1"}, {Name: "two", Run: "#!/bin/sh\nset -e\n"}}
		}, nil},
		{"script name missing", func(r *Recipe) { r.Scripts = []Script{{Run: "true"}} }, []want{{"scripts[0].name", CodeRequired}}},
		{"script name bad", func(r *Recipe) { r.Scripts = []Script{{Name: "Setup Stuff", Run: "true"}} }, []want{{"scripts[0].name", CodeInvalid}}},
		{"script duplicate", func(r *Recipe) { r.Scripts = []Script{{Name: "a", Run: "true"}, {Name: "a", Run: "false"}} }, []want{{"scripts[1].name", CodeDuplicate}}},
		{"script empty", func(r *Recipe) { r.Scripts = []Script{{Name: "a", Run: " \n\t"}} }, []want{{"scripts[0].run", CodeRequired}}},
		{"script NUL", func(r *Recipe) { r.Scripts = []Script{{Name: "a", Run: "echo \x00"}} }, []want{{"scripts[0].run", CodeInvalid}}},
		{"script 64 KiB", func(r *Recipe) { r.Scripts = []Script{{Name: "a", Run: strings.Repeat("#", 64<<10)}} }, nil},
		{"script over 64 KiB", func(r *Recipe) { r.Scripts = []Script{{Name: "a", Run: strings.Repeat("#", 64<<10+1)}} }, []want{{"scripts[0].run", CodeTooLong}}},
		{"51 scripts", func(r *Recipe) {
			for i := range 51 {
				r.Scripts = append(r.Scripts, Script{Name: fmt.Sprintf("s%d", i), Run: "true"})
			}
		}, []want{{"scripts", CodeTooMany}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := minimal()
			tc.mutate(r)
			err := Validate(r)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			got := fieldErrors(t, err)
			var gotW []want
			for _, e := range got {
				gotW = append(gotW, want{e.Path, e.Code})
				if e.Message == "" {
					t.Errorf("%s: empty message", e.Path)
				}
			}
			sortWants(gotW)
			wantW := slices.Clone(tc.want)
			sortWants(wantW)
			if !slices.Equal(gotW, wantW) {
				t.Fatalf("got errors:\n%swant %v", dump(got), wantW)
			}
		})
	}
}

func sortWants(w []want) {
	sort.Slice(w, func(i, j int) bool {
		if w[i].path != w[j].path {
			return w[i].path < w[j].path
		}
		return w[i].code < w[j].code
	})
}

// TestTimezoneWithoutZoneDatabase: a host without /usr/share/zoneinfo can only check the
// grammar, and must not refuse a well-formed zone for that.
func TestTimezoneWithoutZoneDatabase(t *testing.T) {
	c := &checker{now: time.Now(), zoneDir: filepath.Join(t.TempDir(), "missing")}
	c.timezone("Mars/Olympus_Mons")
	c.timezone("Bad Zone")
	if len(c.errs) != 1 || c.errs[0].Path != "timezone" {
		t.Fatalf("got %v", c.errs)
	}
}

// TestTimezoneAgainstZoneFiles checks that a zone must be a real TZif file in the database
// directory, with a directory of our own.
func TestTimezoneAgainstZoneFiles(t *testing.T) {
	dir := t.TempDir()
	// The smallest TZif v1 file: no transitions, one type (UTC+0) named "UTC".
	tzif := append([]byte("TZif"), make([]byte, 16)...)
	for _, n := range []uint32{0, 0, 0, 0, 1, 4} {
		tzif = append(tzif, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	tzif = append(tzif, 0, 0, 0, 0, 0, 0, 'U', 'T', 'C', 0)
	if err := os.MkdirAll(filepath.Join(dir, "Test"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Test", "Zone"), tzif, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Test", "Garbage"), []byte("not a zone"), 0o644); err != nil {
		t.Fatal(err)
	}
	for tz, ok := range map[string]bool{"Test/Zone": true, "Test/Garbage": false, "Test": false, "Test/Missing": false} {
		c := &checker{now: time.Now(), zoneDir: dir}
		c.timezone(tz)
		if (len(c.errs) == 0) != ok {
			t.Errorf("%s: valid=%v, errors %v", tz, ok, c.errs)
		}
	}
}
