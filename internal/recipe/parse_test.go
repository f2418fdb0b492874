package recipe

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const minimalYAML = `apiVersion: debate/v1
name: minimal
base:
  distribution: debian
  release: bookworm
`

func TestParseMinimalBothFormats(t *testing.T) {
	y := mustParse(t, minimalYAML, YAML)
	j := mustParse(t, `{"apiVersion":"debate/v1","name":"minimal","base":{"distribution":"debian","release":"bookworm"}}`, JSON)
	if y.Hash() != j.Hash() {
		t.Fatalf("YAML %s != JSON %s", y.Hash(), j.Hash())
	}
	// Parse returns the recipe as written: defaults are Normalize's job.
	if y.Hostname != "" || y.Base.Updates != nil {
		t.Errorf("Parse filled defaults: %+v", y)
	}
}

func TestDetect(t *testing.T) {
	for in, want := range map[string]Format{
		`{"a":1}`:              JSON,
		"  \n\t{\"a\":1}":      JSON,
		"\xef\xbb\xbf{}":       JSON,
		"a: 1":                 YAML,
		"{a: 1}\n":             JSON, // flow YAML that looks like JSON is read as JSON (and fails there)
		"# comment\n{\"a\":1}": YAML,
		"":                     YAML,
	} {
		if got := Detect([]byte(in)); got != want {
			t.Errorf("Detect(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestUnknownFields(t *testing.T) {
	yamlDoc := minimalYAML + `hostnme: x
files:
  - path: /a
    content: x
  - path: /b
    content: y
  - path: /c
    content: z
    modee: "0644"
base2: {}
`
	jsonDoc := `{
  "apiVersion": "debate/v1",
  "name": "minimal",
  "base": {"distribution": "debian", "release": "bookworm", "mirrors": "x"},
  "hostnme": "x",
  "files": [{"path": "/a", "content": "x"}, {"path": "/b", "content": "y"},
            {"path": "/c", "content": "z", "modee": "0644"}],
  "users": [{"name": "alice", "ssh_keys": []}]
}`
	for _, tc := range []struct {
		name  string
		doc   string
		paths map[string]string // path -> hint expected in message
	}{
		{"yaml", yamlDoc, map[string]string{"hostnme": `"hostname"`, "files[2].modee": `"mode"`, "base2": `"base"`}},
		{"json", jsonDoc, map[string]string{"hostnme": `"hostname"`, "files[2].modee": `"mode"`, "base.mirrors": `"mirror"`, "users[0].ssh_keys": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), Auto)
			errs := fieldErrors(t, err)
			if len(errs) != len(tc.paths) {
				t.Fatalf("want %d errors, got:\n%s", len(tc.paths), dump(errs))
			}
			for _, e := range errs {
				hint, ok := tc.paths[e.Path]
				if !ok || e.Code != CodeUnknownField {
					t.Errorf("unexpected %+v", e)
					continue
				}
				if !strings.Contains(e.Message, hint) {
					t.Errorf("%s: message %q lacks hint %s", e.Path, e.Message, hint)
				}
				if e.Line == 0 {
					t.Errorf("%s: no line", e.Path)
				}
			}
			if !strings.Contains(err.Error(), "files[2].modee: unknown field") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestWrongTypes(t *testing.T) {
	doc := minimalYAML + `hostname: 1234
packages: vim
layers: [ssh, [nested]]
boot: {bios: true}
users:
  - name: alice
    sudo: "yes"
    groups: adm
  - just-a-string
image:
  compressionLevel: high
base2: null
`
	_, err := Parse([]byte(doc), YAML)
	errs := fieldErrors(t, err)
	for _, w := range []want{
		{"hostname", CodeWrongType},
		{"packages", CodeWrongType},
		{"layers[1]", CodeWrongType},
		{"boot", CodeWrongType},
		{"users[0].sudo", CodeWrongType},
		{"users[0].groups", CodeWrongType},
		{"users[1]", CodeWrongType},
		{"image.compressionLevel", CodeWrongType},
		{"base2", CodeUnknownField},
	} {
		if !hasError(errs, w.path, w.code) {
			t.Errorf("missing %v in:\n%s", w, dump(errs))
		}
	}
	// A field that failed to decode is reported once, not again as "required" or "invalid".
	if len(errs) != 9 {
		t.Errorf("want 9 errors, got:\n%s", dump(errs))
	}
}

func TestNullIsAbsent(t *testing.T) {
	r := mustParse(t, minimalYAML+"hostname:\npackages: ~\nfiles: null\n", YAML)
	if r.Hostname != "" || r.Packages != nil || r.Files != nil {
		t.Fatalf("null not absent: %+v", r)
	}
	// ...but a required field that is null is missing.
	_, err := Parse([]byte(strings.Replace(minimalYAML, "name: minimal", "name: null", 1)), YAML)
	if errs := fieldErrors(t, err); !hasError(errs, "name", CodeRequired) {
		t.Fatalf("got %s", dump(errs))
	}
}

func TestUnquotedYAMLMode(t *testing.T) {
	r := mustParse(t, minimalYAML+"files:\n  - path: /a\n    content: x\n    mode: 0755\n", YAML)
	if r.Files[0].Mode != "0755" {
		t.Fatalf("mode = %q", r.Files[0].Mode)
	}
	// 0o755 is an integer to YAML 1.2 but not the octal-string form the schema documents.
	_, err := Parse([]byte(minimalYAML+"files:\n  - path: /a\n    content: x\n    mode: 0o755\n"), YAML)
	if errs := fieldErrors(t, err); !hasError(errs, "files[0].mode", CodeInvalid) {
		t.Fatalf("got %s", dump(errs))
	}
}

func TestDocumentLevelErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, code, msg string
		format               Format
	}{
		{"empty", "", CodeSyntax, "empty", YAML},
		{"only comments", "# nothing\n", CodeSyntax, "empty", YAML},
		{"empty json", "  ", CodeSyntax, "empty", JSON},
		{"yaml syntax", "name: [unclosed\n", CodeSyntax, "", YAML},
		{"json syntax", "{\"name\": }", CodeSyntax, "", JSON},
		{"json truncated", "{\"name\": \"x\"", CodeSyntax, "end", JSON},
		{"json trailing data", "{} {}", CodeSyntax, "after", JSON},
		{"yaml duplicate key", minimalYAML + "name: other\n", CodeSyntax, `"name" appears twice`, YAML},
		{"json duplicate key", `{"name":"a","base":{"release":"x","release":"y"}}`, CodeSyntax, `"release" appears twice`, JSON},
		{"anchor", minimalYAML + "packages: &p [vim]\nlayers: *p\n", CodeSyntax, "anchors", YAML},
		{"alias only", minimalYAML + "packages: *p\n", CodeSyntax, "", YAML},
		{"merge key", minimalYAML + "other:\n  <<: {a: 1}\n", CodeSyntax, "merge", YAML},
		{"two documents", minimalYAML + "---\nname: second\n", CodeSyntax, "more than one", YAML},
		{"custom tag", minimalYAML + "hostname: !shell x\n", CodeSyntax, "tag", YAML},
		{"binary tag", minimalYAML + "hostname: !!binary aGk=\n", CodeSyntax, "tag", YAML},
		{"non-string key", minimalYAML + "1: x\n", CodeSyntax, "not a string", YAML},
		{"not utf-8", "name: \xff\xfe\n", CodeSyntax, "UTF-8", YAML},
		{"too deep", strings.Repeat("[", 100) + strings.Repeat("]", 100), CodeSyntax, "deeper", YAML},
		{"too deep json", "{\"a\":" + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}", CodeSyntax, "deeper", JSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), tc.format)
			errs := fieldErrors(t, err)
			if len(errs) != 1 || errs[0].Code != tc.code || errs[0].Path != "" || !strings.Contains(errs[0].Message, tc.msg) {
				t.Fatalf("got:\n%s", dump(errs))
			}
		})
	}
}

func TestRootNotAMapping(t *testing.T) {
	for _, doc := range []string{"- a\n- b\n", "just text\n", "[1,2]"} {
		_, err := Parse([]byte(doc), Auto)
		errs := fieldErrors(t, err)
		if len(errs) != 1 || errs[0].Code != CodeWrongType {
			t.Errorf("%q: got\n%s", doc, dump(errs))
		}
	}
}

func TestSyntaxErrorLine(t *testing.T) {
	_, err := Parse([]byte("apiVersion: debate/v1\nname: x\nbase:\n  release: [\n"), YAML)
	errs := fieldErrors(t, err)
	if errs[0].Line == 0 && !strings.Contains(errs[0].Message, "line") {
		t.Errorf("no line information: %+v", errs[0])
	}
	_, err = Parse([]byte("{\n\"name\": \"x\",\n\"base\": {,}\n}"), JSON)
	errs = fieldErrors(t, err)
	if errs[0].Line != 3 {
		t.Errorf("want line 3: %+v", errs[0])
	}
}

func TestSizeLimit(t *testing.T) {
	// Exactly at the limit is read (and here fails only for its content).
	pad := MaxRecipeBytes - len(minimalYAML) - len("description: \"\"\n")
	atLimit := minimalYAML + "description: \"" + strings.Repeat("a", pad) + "\"\n"
	if len(atLimit) != MaxRecipeBytes {
		t.Fatalf("bad test: %d bytes", len(atLimit))
	}
	_, err := Parse([]byte(atLimit), YAML)
	errs := fieldErrors(t, err)
	if errors.Is(err, ErrTooLarge) || !hasError(errs, "description", CodeTooLong) {
		t.Fatalf("at the limit: %s", dump(errs))
	}
	// One byte over is refused before parsing.
	_, err = Parse([]byte(atLimit+" "), YAML)
	errs = fieldErrors(t, err)
	if !errors.Is(err, ErrTooLarge) || len(errs) != 1 || errs[0].Code != CodeTooLarge {
		t.Fatalf("over the limit: %v", err)
	}
	// A big but valid recipe within the limit parses.
	var b strings.Builder
	b.WriteString(minimalYAML + "files:\n")
	for i := range 3 {
		fmt.Fprintf(&b, "  - path: /f%d\n    content: %q\n", i, strings.Repeat("x", 200<<10))
	}
	mustParse(t, b.String(), YAML)
}

// TestAllErrorsAtOnce: a recipe with many different mistakes gets all of them, each at its
// own path, in document order, in one answer.
func TestAllErrorsAtOnce(t *testing.T) {
	doc := `apiVersion: debate/v2
name: My ISO
description: "bell\a"
base:
  distribution: debian
  release: sid
  mirror: ftp://example.org/debian
  snapshot: 2025-05-20
  components: [main, universe]
packages: [vim, Vim, "a"]
layers: [ssh, ssh]
files:
  - path: /etc/motd
    content: hi
  - path: etc/relative
    content: x
  - path: /usr/bin/x
    content: x
    mode: "4755"
  - path: /etc/motd
    content: again
    contentBase64: aGk=
users:
  - name: alice
    passwordHash: hunter2
    sshKeys: ["ssh-ed25519 AAAA", "ssh-dss AAAA"]
    shell: /bin/csh
  - name: daemon
hostname: -bad-
locale: en_US
timezone: Mars/Olympus_Mons
keyboard: {layout: DE}
services:
  enable: [ssh]
  disable: [ssh.service, bad unit]
kernel:
  cmdline: [quiet, root=/dev/sda1]
boot: [efi]
image: {compression: xz, compressionLevel: 6}
scripts:
  - name: setup
    run: ""
  - name: setup
    run: echo
  - nmae: x
`
	_, err := Parse([]byte(doc), YAML)
	errs := fieldErrors(t, err)
	expected := []want{
		{"apiVersion", CodeUnsupported},
		{"name", CodeInvalid},
		{"description", CodeInvalid},
		{"base.release", CodeUnsupported},
		{"base.mirror", CodeInvalid},
		{"base.snapshot", CodeInvalid},
		{"base.components[1]", CodeInvalid},
		{"packages[1]", CodeInvalid},
		{"packages[2]", CodeInvalid},
		{"layers[1]", CodeDuplicate},
		{"files[1].path", CodeInvalid},
		{"files[2].mode", CodeInvalid},
		{"files[3].path", CodeDuplicate},
		{"files[3]", CodeConflict},
		{"users[0].passwordHash", CodeInvalid},
		{"users[0].sshKeys[0]", CodeInvalid},
		{"users[0].sshKeys[1]", CodeInvalid},
		{"users[0].shell", CodeInvalid},
		{"users[1].name", CodeInvalid},
		{"hostname", CodeInvalid},
		{"locale", CodeInvalid},
		{"timezone", CodeInvalid},
		{"keyboard.layout", CodeInvalid},
		{"services.disable[0]", CodeConflict},
		{"services.disable[1]", CodeInvalid},
		{"kernel.cmdline[1]", CodeInvalid},
		{"boot[0]", CodeInvalid},
		{"image.compressionLevel", CodeInvalid},
		{"scripts[0].run", CodeRequired},
		{"scripts[1].name", CodeDuplicate},
		{"scripts[2].nmae", CodeUnknownField},
		{"scripts[2].name", CodeRequired},
		{"scripts[2].run", CodeRequired},
	}
	for _, w := range expected {
		if !hasError(errs, w.path, w.code) {
			t.Errorf("missing %v", w)
		}
	}
	if len(errs) != len(expected) {
		t.Errorf("want %d errors, got %d:\n%s", len(expected), len(errs), dump(errs))
	}
	// Every error knows its line, and the list reads top to bottom.
	last := 0
	for _, e := range errs {
		if e.Line == 0 {
			t.Errorf("%s: no line", e.Path)
		}
		if e.Line < last {
			t.Errorf("%s (line %d) after line %d", e.Path, e.Line, last)
		}
		last = e.Line
	}
	// The message has one line per problem.
	if n := strings.Count(err.Error(), "\n") + 1; n != len(errs) {
		t.Errorf("Error() has %d lines for %d problems", n, len(errs))
	}
}

// TestCanonicalFormMustFit: JSON escaping can make the canonical form larger than the
// document; a recipe whose canonical form would not parse again is refused.
func TestCanonicalFormMustFit(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimalYAML + "files:\n")
	// 4 × 200 KiB of '"' in block scalars: 800 KiB of source, 1.6 MiB once JSON-escaped.
	for i := range 4 {
		b.WriteString("  - path: /f" + string(rune('0'+i)) + "\n    content: |\n      " + strings.Repeat(`"`, 200<<10) + "\n")
	}
	_, err := Parse([]byte(b.String()), YAML)
	errs := fieldErrors(t, err)
	if !errors.Is(err, ErrTooLarge) || len(errs) != 1 || errs[0].Code != CodeTooLarge {
		t.Fatalf("got %s", dump(errs))
	}
}
