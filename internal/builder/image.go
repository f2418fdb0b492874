package builder

import (
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// Kernel command line every image boots with; the recipe's additions follow. The serial
// console comes last so that it is /dev/console: boot tests and headless machines read it.
const baseCmdline = "boot=live components console=tty0 console=ttyS0,115200n8"

var percentRe = regexp.MustCompile(`(\d{1,3})%`)

// squashfs copies the kernel and initrd out of the image and compresses the root tree.
func (p *pipeline) squashfs() error {
	// Inside the sandbox: the image tree is recipe content, and its /boot links must be
	// resolved where host files are invisible.
	prep := `set -eu
R=/build/rootfs
mkdir -p /build/iso/live /build/meta
k=$(ls "$R"/boot | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)
[ -n "$k" ] || { echo "debate-error: the image has no kernel in /boot"; exit 1; }
cp -L "$R/boot/vmlinuz-$k" /build/iso/live/vmlinuz
cp -L "$R/boot/initrd.img-$k" /build/iso/live/initrd.img
printf '%s\n' "$k" > /build/meta/kernel
cp "$R/var/lib/dpkg/status" /build/meta/dpkg-status
`
	if err := p.exec(step{name: "kernel", args: []string{"/bin/sh", "-c", prep}}); err != nil {
		return err
	}
	img := p.recipe.Image
	procs := max(1, min(int(p.o.Limits.CPUs), runtime.NumCPU()))
	args := []string{"mksquashfs", "/build/rootfs", "/build/iso/live/filesystem.squashfs",
		"-noappend", "-comp", img.Compression, "-b", "1M",
		"-reproducible", "-mkfs-time", strconv.FormatInt(p.sde, 10), "-all-time", strconv.FormatInt(p.sde, 10),
		"-processors", strconv.Itoa(procs),
		// The live system gets these from its own boot; the build's copies are noise.
		"-wildcards", "-e", "proc/*", "sys/*", "dev/*", "run/*", "tmp/*",
	}
	switch {
	case img.Compression == "zstd" && img.CompressionLevel > 0:
		args = append(args, "-Xcompression-level", strconv.Itoa(img.CompressionLevel))
	case img.Compression == "gzip" && img.CompressionLevel > 0:
		args = append(args, "-Xcompression-level", strconv.Itoa(img.CompressionLevel))
	}
	last := -1
	return p.exec(step{
		name: "mksquashfs",
		// mksquashfs refuses SOURCE_DATE_EPOCH together with -mkfs-time/-all-time.
		args: append([]string{"env", "-u", "SOURCE_DATE_EPOCH"}, args...),
		onLine: func(l string) {
			if m := percentRe.FindStringSubmatch(l); m != nil {
				if n, _ := strconv.Atoi(m[1]); n != last && n <= 100 {
					last = n
					p.rep.progress(float64(n)/100, "")
				}
			}
		},
	})
}

// bootloader prepares isolinux (BIOS) and shim + Debian-signed GRUB (UEFI) from the
// boot loader packages of the pinned archive, so that the host's own copies never shape
// the image.
func (p *pipeline) bootloader() error {
	cmdline := baseCmdline
	if len(p.recipe.Kernel.Cmdline) > 0 {
		cmdline += " " + strings.Join(p.recipe.Kernel.Cmdline, " ")
	}
	title := p.recipe.Name
	var s strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&s, format+"\n", a...) }
	w("set -eu")
	w("B=/build; mkdir -p $B/bootpkgs $B/iso/.disk")
	for _, lp := range p.lock {
		if lp.Role == "boot" || contains(bootPackages, lp.Name) {
			if contains(bootPackages, lp.Name) {
				w("dpkg-deb -x /cache/%s $B/bootpkgs", shq(lp.File))
			}
		}
	}
	w("printf '%%s\\n' %s > $B/iso/.disk/info", shq(fmt.Sprintf("%s %s (%s)", title, p.recipe.Base.Release, Version)))
	if contains(p.recipe.Boot, "bios") {
		w("mkdir -p $B/iso/isolinux")
		w("cp $B/bootpkgs/usr/lib/ISOLINUX/isolinux.bin $B/bootpkgs/usr/lib/syslinux/modules/bios/ldlinux.c32 $B/iso/isolinux/")
		w("cat > $B/iso/isolinux/isolinux.cfg <<'CFG'")
		w("serial 0 115200\ndefault live\nprompt 0\ntimeout 1\nlabel live\n  kernel /live/vmlinuz\n  append initrd=/live/initrd.img %s\nCFG", cmdline)
	}
	if contains(p.recipe.Boot, "uefi") {
		w("mkdir -p $B/iso/boot/grub $B/efi/EFI/boot $B/efi/EFI/debian")
		w("cat > $B/iso/boot/grub/grub.cfg <<'CFG'")
		w("serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\nset timeout=1\nset default=0\nmenuentry %s {\n  linux /live/vmlinuz %s\n  initrd /live/initrd.img\n}\nCFG", shq(title), cmdline)
		w("cp $B/bootpkgs/usr/lib/shim/shimx64.efi.signed $B/efi/EFI/boot/bootx64.efi")
		w("cp $B/bootpkgs/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed $B/efi/EFI/boot/grubx64.efi")
		w("cp $B/iso/boot/grub/grub.cfg $B/efi/EFI/debian/grub.cfg")
		w("find $B/efi -exec touch -h -d @$SOURCE_DATE_EPOCH {} +")
		// A fixed volume id and --invariant keep the FAT image identical between builds;
		// mtools stamps SOURCE_DATE_EPOCH.
		w("mkfs.fat -C --invariant -i 1234abcd -n EFIBOOT $B/iso/boot/grub/efiboot.img 10240 >/dev/null")
		w("mmd -i $B/iso/boot/grub/efiboot.img ::/EFI ::/EFI/boot ::/EFI/debian")
		w("for f in EFI/boot/bootx64.efi EFI/boot/grubx64.efi EFI/debian/grub.cfg; do mcopy -m -i $B/iso/boot/grub/efiboot.img $B/efi/$f ::/$f; done")
	}
	// xorriso stamps SOURCE_DATE_EPOCH on the volume but not on files: clamp the tree.
	w("find $B/iso -exec touch -h -d @$SOURCE_DATE_EPOCH {} +")
	return p.exec(step{name: "bootloader", args: []string{"/bin/sh", "-c", s.String()}})
}

// iso writes the hybrid image: bootable from a CD or a USB stick, BIOS and/or UEFI.
func (p *pipeline) iso() error {
	args := []string{"xorriso", "-as", "mkisofs", "-o", "/build/out/image.iso",
		"-iso-level", "3", "-full-iso9660-filenames", "-joliet", "-joliet-long", "-rational-rock",
		"-volid", volumeID(p.recipe.Name)}
	bios, uefi := contains(p.recipe.Boot, "bios"), contains(p.recipe.Boot, "uefi")
	if bios {
		args = append(args,
			"-isohybrid-mbr", "/build/bootpkgs/usr/lib/ISOLINUX/isohdpfx.bin",
			"-eltorito-boot", "isolinux/isolinux.bin", "-eltorito-catalog", "isolinux/boot.cat",
			"-no-emul-boot", "-boot-load-size", "4", "-boot-info-table")
	}
	if uefi {
		if bios {
			args = append(args, "-eltorito-alt-boot")
		}
		args = append(args, "-e", "boot/grub/efiboot.img", "-no-emul-boot")
		if bios {
			args = append(args, "-isohybrid-gpt-basdat")
		} else {
			args = append(args, "-append_partition", "2", "0xef", "/build/iso/boot/grub/efiboot.img")
		}
	}
	args = append(args, "/build/iso")
	if err := p.exec(step{name: "xorriso", args: []string{"sh", "-c", `mkdir -p /build/out && exec "$@"`, "sh"}}); err != nil {
		return err
	}
	last := -1
	return p.exec(step{
		name: "xorriso", args: args,
		onLine: func(l string) {
			if m := percentRe.FindStringSubmatch(l); m != nil && strings.Contains(l, "done") {
				if n, _ := strconv.Atoi(m[1]); n != last {
					last = n
					p.rep.progress(float64(n)/100, "")
				}
			}
		},
	})
}

// volumeID derives the ISO volume label (at most 32 characters of A-Z, 0-9 and _).
func volumeID(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	id := "DEBATE_" + b.String()
	if len(id) > 32 {
		id = id[:32]
	}
	return id
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
