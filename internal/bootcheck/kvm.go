package bootcheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ioctl numbers from <linux/kvm.h>: _IO(KVMIO=0xAE, 0x00) and _IO(KVMIO, 0x01).
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
	kvmAPIVersion    = 12 // stable since Linux 2.6.22
)

// probeTimeout bounds the probe's QEMU run. A working KVM brings OVMF to its boot
// manager in about a second; TCG needs a few. Longer means KVM is stuck.
const probeTimeout = 10 * time.Second

// kvmDevice opens /dev/kvm and asks for the API version and a VM: cheap checks
// that catch a missing module, missing permission or a kernel without KVM.
func kvmDevice() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 {
		return fmt.Errorf("KVM_GET_API_VERSION: %w", errno)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("KVM API version %d, want %d", v, kvmAPIVersion)
	}
	vm, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmCreateVM, 0)
	if errno != 0 {
		return fmt.Errorf("KVM_CREATE_VM: %w", errno)
	}
	syscall.Close(int(vm))
	return nil
}

// probeKVM tells whether KVM can really run a guest here. /dev/kvm can exist, answer
// its ioctls, and still fail on the first unusual instruction ("emulation failure"),
// after which QEMU hangs. So past the device checks it boots the UEFI firmware (when
// installed: it exercises long mode and paging, more than SeaBIOS does) with no
// medium under KVM and a short hard timeout, and wants its boot manager to speak.
// It returns "" when KVM works, otherwise why not.
func probeKVM(ctx context.Context, tmp string, deadline time.Time) string {
	if err := kvmDevice(); err != nil {
		return "/dev/kvm: " + err.Error()
	}
	spec := qemuSpec{firmware: FirmwareBIOS, accel: AccelKVM, memoryMiB: 256}
	if _, err := os.Stat(ovmfCode); err == nil {
		vars, err := newVarsFile(tmp)
		if err == nil {
			defer os.Remove(vars)
			spec.firmware, spec.varsPath = FirmwareUEFI, vars
		}
	}
	if d := time.Now().Add(probeTimeout); d.Before(deadline) {
		deadline = d
	}
	out, err := run(ctx, spec, deadline, stopAtFirmware, nil, nil)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errKVMBroke):
		return "QEMU: " + out.kvmFailure
	case errors.Is(err, ErrNoLoginPrompt):
		return fmt.Sprintf("the %s firmware printed nothing within %s under KVM", spec.firmware, probeTimeout)
	default:
		return err.Error()
	}
}
