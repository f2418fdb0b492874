package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"debate/internal/bootcheck"
	"debate/internal/testenv"
)

func TestParseBootTest(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	t.Run("flags after and before the ISO", func(t *testing.T) {
		for _, args := range [][]string{
			{"x.iso", "--firmware", "uefi", "--accel", "tcg", "--timeout", "90s", "--memory", "512", "--json", "--log", "c.log"},
			{"--firmware=uefi", "--accel=tcg", "x.iso", "--timeout=90s", "--memory=512", "--json", "--log=c.log"},
		} {
			cfg, err := parseBootTest(args, env(), io.Discard)
			if err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			o := cfg.opts
			if o.ISO != "x.iso" || o.Firmware != bootcheck.FirmwareUEFI || o.Accel != bootcheck.AccelTCG ||
				o.Timeout != 90*time.Second || o.MemoryMiB != 512 || !cfg.json || cfg.logPath != "c.log" {
				t.Fatalf("%v: parsed %+v", args, cfg)
			}
		}
	})
	t.Run("defaults and environment", func(t *testing.T) {
		cfg, err := parseBootTest([]string{"x.iso", "--firmware", "bios"}, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.opts.Accel != bootcheck.AccelAuto || cfg.opts.Timeout != bootcheck.DefaultTimeout || cfg.opts.MemoryMiB != bootcheck.DefaultMemoryMiB {
			t.Fatalf("defaults %+v", cfg.opts)
		}
		cfg, err = parseBootTest([]string{"x.iso", "--firmware", "bios"},
			env("DEBATE_BOOT_ACCEL", "tcg", "DEBATE_BOOT_TIMEOUT", "3m", "DEBATE_BOOT_MEMORY", "2048"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.opts.Accel != bootcheck.AccelTCG || cfg.opts.Timeout != 3*time.Minute || cfg.opts.MemoryMiB != 2048 {
			t.Fatalf("from environment %+v", cfg.opts)
		}
		cfg, err = parseBootTest([]string{"x.iso", "--firmware", "bios", "--accel", "kvm"}, env("DEBATE_BOOT_ACCEL", "tcg"), io.Discard)
		if err != nil || cfg.opts.Accel != bootcheck.AccelKVM {
			t.Fatalf("the flag does not win over the environment: %+v %v", cfg.opts, err)
		}
	})
	bad := []struct {
		args []string
		env  func(string) string
		want string
	}{
		{[]string{"--firmware", "bios"}, env(), "ISO argument: required"},
		{[]string{"a.iso", "b.iso", "--firmware", "bios"}, env(), "ISO argument: one ISO at a time"},
		{[]string{"x.iso"}, env(), "--firmware: required"},
		{[]string{"x.iso", "--firmware", "efi"}, env(), `--firmware: "efi" is not bios or uefi`},
		{[]string{"x.iso", "--firmware", "bios", "--accel", "hvf"}, env(), `--accel: "hvf" is not auto, kvm or tcg`},
		{[]string{"x.iso", "--firmware", "bios", "--timeout", "-1s"}, env(), "--timeout: -1s must be positive"},
		{[]string{"x.iso", "--firmware", "bios", "--timeout", "soon"}, env(), `invalid value "soon" for flag -timeout`},
		{[]string{"x.iso", "--firmware", "bios"}, env("DEBATE_BOOT_TIMEOUT", "8"), "DEBATE_BOOT_TIMEOUT:"},
		{[]string{"x.iso", "--firmware", "bios"}, env("DEBATE_BOOT_MEMORY", "1G"), "DEBATE_BOOT_MEMORY:"},
		{[]string{"x.iso", "--firmware", "bios"}, env("DEBATE_BOOT_ACCEL", "fast"), `--accel: "fast" is not`},
	}
	for _, c := range bad {
		_, err := parseBootTest(c.args, c.env, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want it to contain %q", c.args, err, c.want)
		}
	}
}

// Options that only Boot's validation catches still give exit status 2 and name the flag.
func TestBootTestBadOptions(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"boot-test", filepath.Join(dir, "none.iso"), "--firmware", "bios"}, "ISO argument: " + filepath.Join(dir, "none.iso") + " does not exist"},
		{[]string{"boot-test", dir, "--firmware", "bios"}, "is not a regular file"},
		{[]string{"boot-test", os.Args[0], "--firmware", "bios", "--memory", "16"}, "--memory: 16 MiB is outside"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(c.args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr %q, want %q", c.args, stderr.String(), c.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%v: printed %q before validating", c.args, stdout.String())
		}
	}
}

// A real QEMU run of the command on an ISO without a boot record: it fails (exit 1)
// quickly, in JSON and in text, saying why.
func TestBootTestCommandFails(t *testing.T) {
	testenv.Need(t, "QEMU and xorriso", bootcheck.Available(), testenv.Tool("xorriso", "xorriso"))
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tree", "readme.txt"), []byte("no boot record\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "plain.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", iso, filepath.Join(dir, "tree")).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}

	t.Run("json", func(t *testing.T) {
		logPath := filepath.Join(dir, "console.log")
		var stdout, stderr bytes.Buffer
		code := run([]string{"boot-test", iso, "--firmware", "bios", "--timeout", "45s", "--json", "--log", logPath}, &stdout, &stderr)
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout %s; stderr %s", code, stdout.String(), stderr.String())
		}
		var lines []map[string]any
		sc := bufio.NewScanner(&stdout)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("not one JSON object per line: %q: %v", sc.Text(), err)
			}
			lines = append(lines, m)
		}
		if len(lines) < 2 {
			t.Fatalf("want milestones and a result, got %v", lines)
		}
		if first := lines[0]; first["type"] != "milestone" || first["name"] != "firmware" {
			t.Errorf("first line %v", first)
		}
		if _, ok := lines[0]["seconds"].(float64); !ok {
			t.Errorf("milestone without seconds: %v", lines[0])
		}
		last := lines[len(lines)-1]
		if last["type"] != "result" || last["passed"] != false || last["code"] != "not_bootable" || last["firmware"] != "bios" {
			t.Errorf("result %v", last)
		}
		if a := last["accel"]; a != "kvm" && a != "tcg" {
			t.Errorf("accel %v", a)
		}
		if tail, _ := last["firmware_tail"].([]any); len(tail) == 0 || tail[len(tail)-1] != "No bootable device." {
			t.Errorf("firmware_tail %v", last["firmware_tail"])
		}
		if _, err := os.Stat(logPath); err != nil {
			t.Errorf("--log file: %v", err)
		}
	})
	t.Run("text", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"boot-test", "--firmware", "bios", "--timeout", "45s", iso}, &stdout, &stderr)
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		if !strings.Contains(stdout.String(), "firmware ") || !strings.Contains(stdout.String(), "SeaBIOS") {
			t.Errorf("stdout lacks the firmware milestone: %q", stdout.String())
		}
		for _, want := range []string{"FAIL  the firmware found nothing bootable", "milestones reached: firmware", "last firmware log lines:", "| No bootable device."} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
			}
		}
	})
}
