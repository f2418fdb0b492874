package builder

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"debate/internal/recipe"
	"debate/internal/sandbox"
)

// deferInitramfs diverts update-initramfs to a no-op while packages install.
const deferInitramfs = `chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.debate --add /usr/sbin/update-initramfs && printf '#!/bin/sh\nexit 0\n' > "$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs"`

// shq quotes s for a POSIX shell. Every value is validated against its grammar before it
// gets here; quoting is the second wall, not the first.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// bootstrap installs the image with mmdebstrap from the local repository, with no
// network, and runs the customisation hook inside the same sandboxed run.
func (p *pipeline) bootstrap() error {
	script, err := p.customiseScript()
	if err != nil {
		return err
	}
	if err := p.writeFile("custom/customise.sh", []byte(script), 0o755); err != nil {
		return err
	}
	b := p.recipe.Base
	phases := []struct {
		prefix string
		frac   float64
	}{
		{"I: running apt-get update", 0.05},
		{"I: downloading packages", 0.10},
		{"I: extracting archives", 0.20},
		{"I: installing essential packages", 0.35},
		{"I: installing remaining packages", 0.55},
	}
	inCustomise := false
	err = p.exec(step{
		name: "the installation and customisation",
		args: []string{
			"mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory", "--verbose",
			"--architectures=" + b.Architecture,
			"--include=" + strings.Join(p.includes(), ","),
			"--aptopt=Acquire::Languages \"none\"",
			// The workspace is scratch: dpkg need not fsync every file.
			"--dpkgopt=force-unsafe-io",
			// The kernel and live-boot would each build the initramfs; build it once, at
			// the end of customisation, so that the recipe's files are in it too.
			"--essential-hook=" + deferInitramfs,
			"--customize-hook=sh /build/custom/customise.sh \"$1\"",
			b.Release, "/build/rootfs",
			fmt.Sprintf("deb [trusted=yes] copy:///build/repo %s main", b.Release),
		},
		// The package cache is the local repository's pool, read-only.
		mounts: []sandbox.Mount{{Source: p.debs, Target: "/build/repo/pool"}},
		onLine: func(l string) {
			if !inCustomise {
				for _, ph := range phases {
					if strings.HasPrefix(l, ph.prefix) {
						p.rep.progress(ph.frac, strings.TrimPrefix(l, "I: "))
					}
				}
			}
			if rest, ok := strings.CutPrefix(l, "debate-step: "); ok {
				if !inCustomise {
					inCustomise = true
					p.rep.stageEnd("")
					p.rep.stageStart(StageCustomise, "applying the recipe: files, users, settings, services, scripts")
				}
				var i, n int
				if _, err := fmt.Sscanf(rest, "%d/%d", &i, &n); err == nil && n > 0 {
					p.rep.progress(float64(i-1)/float64(n), rest)
				}
			}
		},
	})
	return explainCustomise(err)
}

// explainCustomise turns the customisation script's own error lines into the build error:
// they name the recipe field or script at fault, which the tool's exit status does not.
func explainCustomise(err error) error {
	var be *Error
	if !errors.As(err, &be) || be.Info.Code != "stage_failed" {
		return err // limits (memory, processes, disk, time) say more than any script line
	}
	for i := len(be.Info.LogTail) - 1; i >= 0; i-- {
		line := be.Info.LogTail[i]
		if msg, ok := strings.CutPrefix(line, "debate-timeout: "); ok {
			be.Info.Code, be.Info.Message = "timeout", msg
			be.Info.Hint = "make the script finish sooner, or raise the script time limit"
			be.Err = fmt.Errorf("%w: %s: %w", ErrTimeout, msg, be.Err)
			return be
		}
		if msg, ok := strings.CutPrefix(line, "debate-error: "); ok {
			be.Info.Message = msg
			if strings.HasPrefix(msg, "scripts[") {
				be.Info.Code, be.Info.Hint = "script_failed", "fix the script named above; its output is in the log"
				be.Err = fmt.Errorf("%w: %s: %w", ErrScriptFailed, msg, be.Err)
			} else {
				be.Info.Code, be.Info.Hint = "customise_failed", "fix the recipe field named above"
			}
			return be
		}
	}
	return err
}

// customiseScript renders the shell script that applies the recipe to the root tree. It
// runs inside the sandbox (no network, no host files), chrooting into the image for every
// command that resolves names or paths, so that a symlink planted in the image can never
// point a write outside it.
func (p *pipeline) customiseScript() (string, error) {
	r := p.recipe
	var s strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&s, format+"\n", a...) }
	type part struct {
		name string
		fn   func() error
	}
	var parts []part
	add := func(name string, fn func() error) { parts = append(parts, part{name, fn}) }

	add("hostname", func() error {
		w("printf '%%s\\n' %s > \"$R/etc/hostname\"", shq(r.Hostname))
		w("printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%%s\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' %s > \"$R/etc/hosts\"", shq(r.Hostname))
		// mmdebstrap copies the build machine's resolver configuration: never ship it.
		w("rm -f \"$R/etc/resolv.conf\"")
		return nil
	})
	add("apt sources", func() error {
		var src strings.Builder
		for _, su := range p.suites() {
			fmt.Fprintf(&src, "deb %s %s %s\n", su.mirror, su.suite, strings.Join(r.Base.Components, " "))
		}
		w("printf '%%s' %s > \"$R/etc/apt/sources.list\"", shq(src.String()))
		return nil
	})
	add("locale", func() error {
		if r.Locale == "C.UTF-8" || r.Locale == "" {
			w("printf 'LANG=C.UTF-8\\n' > \"$R/etc/default/locale\"")
			return nil
		}
		w("printf '%%s UTF-8\\n' %s > \"$R/etc/locale.gen\"", shq(r.Locale))
		w("chroot \"$R\" locale-gen")
		w("printf 'LANG=%%s\\n' %s > \"$R/etc/default/locale\"", shq(r.Locale))
		return nil
	})
	add("timezone", func() error {
		tz := shq(r.Timezone)
		w("[ -e \"$R/usr/share/zoneinfo/\"%s ] || fail %s", tz, shq("timezone: "+r.Timezone+" is not a time zone known to the image's tzdata"))
		w("ln -sfn /usr/share/zoneinfo/%s \"$R/etc/localtime\"", tz)
		w("printf '%%s\\n' %s > \"$R/etc/timezone\"", tz)
		return nil
	})
	add("keyboard", func() error {
		w("printf 'XKBMODEL=\"pc105\"\\nXKBLAYOUT=\"%%s\"\\nXKBVARIANT=\"%%s\"\\nXKBOPTIONS=\"\"\\nBACKSPACE=\"guess\"\\n' %s %s > \"$R/etc/default/keyboard\"", shq(r.Keyboard.Layout), shq(r.Keyboard.Variant))
		return nil
	})
	add("users", func() error {
		w("mkdir -p \"$R/.debate\"")
		for i, u := range r.Users {
			path := fmt.Sprintf("users[%d]", i)
			name := shq(u.Name)
			groups := append([]string(nil), u.Groups...)
			if u.Sudo {
				groups = append(groups, "sudo")
			}
			for _, g := range groups {
				w("chroot \"$R\" getent group %s >/dev/null || fail %s", shq(g), shq(path+".groups: group "+g+" does not exist in the image (a package creates it, or remove it)"))
			}
			home := "/home/" + u.Name
			if u.Name == "root" {
				home = "/root"
			} else {
				args := []string{"--create-home", "--shell", shq(u.Shell)}
				if len(groups) > 0 {
					args = append(args, "--groups", shq(strings.Join(groups, ",")))
				}
				w("chroot \"$R\" useradd %s %s || fail %s", strings.Join(args, " "), name, shq(path+": could not create user "+u.Name))
			}
			if u.PasswordHash != "" {
				w("chroot \"$R\" usermod -p %s %s", shq(u.PasswordHash), name)
			} else {
				w("chroot \"$R\" passwd -q -l %s >/dev/null", name)
			}
			if len(u.SSHKeys) > 0 {
				w("printf '%%s\\n' %s > \"$R/.debate/keys\"", shq(strings.Join(u.SSHKeys, "\n")))
				w("chroot \"$R\" install -d -m 0700 -o %[1]s -g \"$(chroot \"$R\" id -gn %[1]s)\" %[2]s/.ssh", name, shq(home))
				w("chroot \"$R\" install -m 0600 -o %[1]s -g \"$(chroot \"$R\" id -gn %[1]s)\" /.debate/keys %[2]s/.ssh/authorized_keys", name, shq(home))
			}
		}
		return nil
	})
	add("files", func() error {
		for i, f := range r.Files {
			data, err := fileBytes(f)
			if err != nil {
				return fmt.Errorf("files[%d]: %w", i, err)
			}
			staged := fmt.Sprintf("custom/files/%d", i)
			if err := p.writeFile(staged, data, 0o600); err != nil {
				return err
			}
			user, group, _ := strings.Cut(f.Owner, ":")
			w("cp /build/%s \"$R/.debate/file\"", staged)
			w("chroot \"$R\" install -D -m %s -o %s -g %s /.debate/file %s || fail %s", shq(f.Mode), shq(user), shq(group), shq(f.Path),
				shq(fmt.Sprintf("files[%d]: could not place %s (does owner %s exist in the image?)", i, f.Path, f.Owner)))
		}
		return nil
	})
	add("services", func() error {
		for i, u := range r.Services.Enable {
			w("chroot \"$R\" systemctl enable %s || fail %s", shq(u), shq(fmt.Sprintf("services.enable[%d]: unit %s does not exist in the image (add the package that provides it)", i, u)))
		}
		for i, u := range r.Services.Disable {
			w("chroot \"$R\" systemctl disable %s || fail %s", shq(u), shq(fmt.Sprintf("services.disable[%d]: unit %s does not exist in the image", i, u)))
		}
		// Host keys made at package installation would be shared by every machine booted
		// from this image and would differ between two builds: make them at first boot.
		w(`if ls "$R"/etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
  rm -f "$R"/etc/ssh/ssh_host_*
  cat > "$R/etc/systemd/system/debate-ssh-host-keys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
  chroot "$R" systemctl enable debate-ssh-host-keys.service
fi`)
		return nil
	})
	add("scripts", func() error {
		for i, sc := range r.Scripts {
			staged := fmt.Sprintf("custom/scripts/%d", i)
			if err := p.writeFile(staged, []byte(sc.Run), 0o600); err != nil {
				return err
			}
			w("echo \"debate-script: %s\"", sc.Name)
			w("cp /build/%s \"$R/.debate/script\"", staged)
			label := fmt.Sprintf("scripts[%d] (%s)", i, sc.Name)
			limit := ""
			if p.o.ScriptTimeout > 0 {
				limit = fmt.Sprintf("timeout -k 5 %d ", int(p.o.ScriptTimeout.Seconds()))
			}
			w("rc=0; %schroot \"$R\" /bin/sh -e /.debate/script || rc=$?", limit)
			if limit != "" {
				w("[ $rc != 124 ] && [ $rc != 137 ] || { echo %s; exit 1; }", shq(fmt.Sprintf("debate-timeout: %s ran longer than its limit of %s", label, p.o.ScriptTimeout)))
			}
			w("[ $rc = 0 ] || fail %s\"$rc\"", shq(label+" failed with exit status "))
		}
		return nil
	})
	add("initramfs", func() error {
		w(`rm -f "$R/usr/sbin/update-initramfs"`)
		w(`chroot "$R" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs`)
		w(`chroot "$R" update-initramfs -c -k all`)
		return nil
	})
	add("clean up", func() error {
		w("rm -rf \"$R/.debate\"")
		return nil
	})

	w("#!/bin/sh")
	w("# Generated by %s: applies recipe %s to the image root $1.", Version, r.Name)
	w("set -eu")
	w("R=\"$1\"")
	w("fail() { echo \"debate-error: $1\"; exit 1; }")
	w("export SOURCE_DATE_EPOCH LC_ALL=C.UTF-8 TZ=UTC DEBIAN_FRONTEND=noninteractive")
	for i, pt := range parts {
		w("echo \"debate-step: %d/%d %s\"", i+1, len(parts), pt.name)
		if err := pt.fn(); err != nil {
			return "", err
		}
	}
	return s.String(), nil
}

func fileBytes(f recipe.File) ([]byte, error) {
	switch {
	case f.Content != nil:
		return []byte(*f.Content), nil
	case f.ContentBase64 != nil:
		return base64.StdEncoding.DecodeString(*f.ContentBase64)
	}
	return nil, nil
}
