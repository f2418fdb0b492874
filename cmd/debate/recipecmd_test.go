package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"debate/internal/recipe"
)

const cmdMinimal = "apiVersion: debate/v1\nname: tiny\nbase: {distribution: debian, release: bookworm}\npackages: [vim, curl]\n"

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHashCommand(t *testing.T) {
	file := writeTemp(t, "r.yaml", cmdMinimal)
	var out, errb bytes.Buffer
	if code := hashMain([]string{file}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	hash, pretty, ok := strings.Cut(out.String(), "\n")
	if !ok || len(hash) != 64 {
		t.Fatalf("first line is not a hash: %q", out.String())
	}
	// The printed recipe is the one that was hashed: its compact form hashes to line 1.
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(pretty)); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, pretty)
	}
	sum := sha256.Sum256(compact.Bytes())
	if hex.EncodeToString(sum[:]) != hash {
		t.Errorf("printed recipe hashes to %x, not %s", sum, hash)
	}
	r, err := recipe.Parse([]byte(cmdMinimal), recipe.YAML)
	if err != nil || r.Hash() != hash {
		t.Errorf("hash %s differs from the library's (%v)", hash, err)
	}

	// Standard input, JSON, packages in another order: the same hash.
	out.Reset()
	in := `{"apiVersion":"debate/v1","name":"tiny","base":{"distribution":"debian","release":"bookworm"},"packages":["curl","vim"]}`
	if code := hashMain([]string{"-"}, strings.NewReader(in), &out, &errb); code != 0 {
		t.Fatalf("stdin: exit %d: %s", code, errb.String())
	}
	if got, _, _ := strings.Cut(out.String(), "\n"); got != hash {
		t.Errorf("stdin JSON hash %s != %s", got, hash)
	}
}

func TestHashCommandErrors(t *testing.T) {
	bad := writeTemp(t, "bad.yaml", strings.Replace(cmdMinimal, "tiny", "Tiny ISO", 1))
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"invalid recipe", []string{bad}, 1, "name: "},
		{"missing file", []string{filepath.Join(t.TempDir(), "nope.yaml")}, 2, "no such file"},
		{"no argument", nil, 2, "exactly one"},
		{"two arguments", []string{bad, bad}, 2, "exactly one"},
		{"bad flag", []string{"--nope", bad}, 2, "nope"},
		{"bad format", []string{"--format", "toml", bad}, 2, "toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := hashMain(tc.args, strings.NewReader(""), &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.msg) || out.Len() != 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
			}
		})
	}
}

func TestCheckCommand(t *testing.T) {
	good := writeTemp(t, "good.yaml", cmdMinimal)
	var out, errb bytes.Buffer
	if code := checkMain([]string{good}, strings.NewReader(""), &out, &errb); code != 0 || out.String() != "sustained: tiny is valid\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}

	// Every problem, one per line as path: message; flags after the file work too.
	badDoc := "apiVersion: debate/v1\nname: Bad Name\nbase: {distribution: debian, release: sid}\nfiles:\n  - path: /a\n    content: x\n    modee: \"0644\"\n"
	out.Reset()
	errb.Reset()
	code := checkMain([]string{"-"}, strings.NewReader(badDoc), &out, &errb)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if code != 1 || len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "name: ") ||
		!strings.HasPrefix(lines[1], "base.release: ") ||
		!strings.HasPrefix(lines[2], "files[0].modee: unknown field") ||
		!strings.Contains(errb.String(), "3 problems") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr: %s", code, out.String(), errb.String())
	}

	out.Reset()
	code = checkMain([]string{"-", "--json"}, strings.NewReader(badDoc), &out, &errb)
	var res checkResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || code != 1 || res.Valid || len(res.Errors) != 3 {
		t.Fatalf("exit %d, %v, %s", code, err, out.String())
	}
	if e := res.Errors[2]; e.Path != "files[0].modee" || e.Code != recipe.CodeUnknownField || e.Line != 7 {
		t.Errorf("structured error: %+v", e)
	}

	out.Reset()
	code = checkMain([]string{"--json", good}, strings.NewReader(""), &out, &errb)
	res = checkResult{}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || code != 0 || !res.Valid || res.Name != "tiny" || len(res.Hash) != 64 {
		t.Fatalf("exit %d, %v, %s", code, err, out.String())
	}

	// Usage errors and unreadable files are exit 2, not "invalid".
	for _, args := range [][]string{nil, {good, good}, {"--bogus", good}, {t.TempDir()}, {filepath.Join(t.TempDir(), "missing")}} {
		out.Reset()
		errb.Reset()
		if code := checkMain(args, strings.NewReader(""), &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
	// -h is not an error.
	if code := checkMain([]string{"-h"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}

func TestCheckOversizedInput(t *testing.T) {
	big := cmdMinimal + "description: \"" + strings.Repeat("a", recipe.MaxRecipeBytes) + "\"\n"
	var out, errb bytes.Buffer
	if code := checkMain([]string{"-"}, strings.NewReader(big), &out, &errb); code != 1 || !strings.Contains(out.String(), "limit") {
		t.Fatalf("exit %d, stdout %q", code, out.String())
	}
}
